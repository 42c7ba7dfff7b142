//! Schema parsing, canonical forms and compatibility, per schema type. Everything here is pure:
//! text in, verdicts out.

mod avro;
mod json;
mod protobuf;

use crate::types::{Compatibility, SchemaType};

/// A referenced schema, resolved: the name it is imported under, its type and text.
#[derive(Debug, Clone)]
pub struct ResolvedReference {
    pub name: String,
    pub schema_type: SchemaType,
    pub schema: String,
}

/// A schema that parsed, ready for comparison.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema_type: SchemaType,
    /// The text stored and returned: the submitted schema with insignificant whitespace removed
    /// (Avro, JSON) or as submitted (Protobuf).
    pub canonical: String,
    /// Two schemas with the same identity are the same schema (same id when registered).
    pub identity: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(Box<protobuf::ProtoSchema>),
}

/// Parses `schema` of `schema_type`, with the schemas it references.
pub fn parse(
    schema_type: SchemaType,
    schema: &str,
    references: &[ResolvedReference],
) -> Result<ParsedSchema, String> {
    match schema_type {
        SchemaType::Avro => {
            let s = avro::parse(schema, references)?;
            let canonical = compact_json(schema);
            Ok(ParsedSchema {
                schema_type,
                identity: canonical.clone(),
                canonical,
                inner: Inner::Avro(s),
            })
        }
        SchemaType::Json => {
            let s = json::parse(schema, references)?;
            let canonical = compact_json(schema);
            Ok(ParsedSchema {
                schema_type,
                identity: canonical.clone(),
                canonical,
                inner: Inner::Json(s),
            })
        }
        SchemaType::Protobuf => {
            let s = protobuf::parse(schema)?;
            Ok(ParsedSchema {
                schema_type,
                identity: s.identity(),
                canonical: schema.trim().to_string(),
                inner: Inner::Protobuf(Box::new(s)),
            })
        }
    }
}

impl ParsedSchema {
    /// The schema as returned by default: Protobuf as `.proto` text, the others as stored.
    pub fn text(&self) -> String {
        match &self.inner {
            Inner::Protobuf(p) => p.text(),
            _ => self.canonical.clone(),
        }
    }

    /// The Protobuf schema as a base64 `FileDescriptorProto` (`?format=serialized`).
    pub fn serialized(&self) -> Option<String> {
        match &self.inner {
            Inner::Protobuf(p) => Some(p.serialized()),
            _ => None,
        }
    }
}

/// Why data written with `writer` cannot be read with `reader`; empty when it can.
pub fn can_read(reader: &ParsedSchema, writer: &ParsedSchema) -> Vec<String> {
    match (&reader.inner, &writer.inner) {
        (Inner::Avro(r), Inner::Avro(w)) => avro::can_read(r, w),
        (Inner::Json(r), Inner::Json(w)) => json::can_read(r, w),
        (Inner::Protobuf(r), Inner::Protobuf(w)) => protobuf::can_read(r, w),
        _ => vec![format!(
            "schema type changed from {} to {}",
            writer.schema_type.name(),
            reader.schema_type.name()
        )],
    }
}

/// Checks `new` against the subject's earlier versions (oldest first) at `level`. Returns the
/// reasons it is incompatible, each naming the version it conflicts with; empty when compatible.
pub fn check(
    level: Compatibility,
    new: &ParsedSchema,
    previous: &[(i32, ParsedSchema)],
) -> Vec<String> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let against: &[(i32, ParsedSchema)] = if level.transitive() {
        previous
    } else {
        previous.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    for (version, old) in against.iter().rev() {
        if level.backward() {
            for m in can_read(new, old) {
                messages.push(format!(
                    "{m} (the new schema cannot read data written with version {version}; {})",
                    level.name()
                ));
            }
        }
        if level.forward() {
            for m in can_read(old, new) {
                messages.push(format!(
                    "{m} (version {version} cannot read data written with the new schema; {})",
                    level.name()
                ));
            }
        }
    }
    messages
}

/// JSON text without insignificant whitespace, key order and string contents untouched.
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_keeps_strings_and_order() {
        assert_eq!(
            compact_json("{ \"b\" : \"x y\\\" z\",\n \"a\": [1, 2] }"),
            "{\"b\":\"x y\\\" z\",\"a\":[1,2]}"
        );
    }
}
