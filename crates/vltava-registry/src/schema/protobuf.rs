//! Protobuf schemas: `.proto` text (parsed by `protox-parse`) or a base64 `FileDescriptorProto`
//! (what confluent-kafka's ProtobufSerializer registers). Compatibility follows Confluent's
//! Protobuf rules: messages are matched by full name and fields by number; adding or removing a
//! field, renaming it, or changing a scalar type within a wire-compatible group is compatible;
//! removing a message, changing a field's kind or named type, changing between repeated and
//! singular, adding or removing a proto2 required field, moving a field into or out of a oneof,
//! or changing the package is not.

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

#[derive(Debug, Clone)]
pub struct ProtoSchema {
    file: FileDescriptorProto,
    /// The `.proto` text, when the schema was registered as text.
    text: Option<String>,
}

fn from_base64(text: &str) -> Option<FileDescriptorProto> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

pub fn parse(text: &str) -> Result<ProtoSchema, String> {
    match protox_parse::parse("schema.proto", text) {
        Ok(file) => Ok(ProtoSchema {
            file,
            text: Some(text.trim().to_string()),
        }),
        Err(e) => from_base64(text)
            .filter(|f| !f.message_type.is_empty() || !f.enum_type.is_empty())
            .map(|file| ProtoSchema { file, text: None })
            .ok_or_else(|| e.to_string()),
    }
}

/// A type name without its leading dot and the file's package.
fn local_name(package: &str, type_name: &str) -> String {
    let t = type_name.trim_start_matches('.');
    match t.strip_prefix(package).and_then(|r| r.strip_prefix('.')) {
        Some(rest) if !package.is_empty() => rest.to_string(),
        _ => t.to_string(),
    }
}

fn normalize_message(package: &str, m: &mut DescriptorProto) {
    for f in &mut m.field {
        f.json_name = None;
        if let Some(t) = &f.type_name {
            f.type_name = Some(local_name(package, t));
            f.r#type = None;
        }
        if f.label == Some(Label::Optional as i32) {
            f.label = None;
        }
    }
    for n in &mut m.nested_type {
        normalize_message(package, n);
    }
}

impl ProtoSchema {
    /// Equal for the same schema written as text or as a descriptor.
    pub fn identity(&self) -> String {
        let mut f = self.file.clone();
        f.name = None;
        f.source_code_info = None;
        if f.syntax.as_deref() == Some("proto2") {
            f.syntax = None;
        }
        let package = f.package.clone().unwrap_or_default();
        for m in &mut f.message_type {
            normalize_message(&package, m);
        }
        base64::engine::general_purpose::STANDARD.encode(f.encode_to_vec())
    }

    pub fn serialized(&self) -> String {
        let mut f = self.file.clone();
        f.source_code_info = None;
        base64::engine::general_purpose::STANDARD.encode(f.encode_to_vec())
    }

    /// The schema as `.proto` text: as registered, or printed from the descriptor.
    pub fn text(&self) -> String {
        match &self.text {
            Some(t) => t.clone(),
            None => print_file(&self.file),
        }
    }

    /// Every message by full name (without package), nested ones as `Outer.Inner`.
    fn messages(&self) -> HashMap<String, &DescriptorProto> {
        fn walk<'a>(
            prefix: &str,
            m: &'a DescriptorProto,
            out: &mut HashMap<String, &'a DescriptorProto>,
        ) {
            let name = match prefix {
                "" => m.name().to_string(),
                p => format!("{p}.{}", m.name()),
            };
            for n in &m.nested_type {
                walk(&name, n, out);
            }
            out.insert(name, m);
        }
        let mut out = HashMap::new();
        for m in &self.file.message_type {
            walk("", m, &mut out);
        }
        out
    }
}

fn print_file(f: &FileDescriptorProto) -> String {
    let mut out = String::new();
    let syntax = f.syntax.as_deref().unwrap_or("proto2");
    out.push_str(&format!("syntax = \"{syntax}\";\n"));
    if let Some(p) = &f.package {
        out.push_str(&format!("package {p};\n"));
    }
    for d in &f.dependency {
        out.push_str(&format!("import \"{d}\";\n"));
    }
    for m in &f.message_type {
        out.push('\n');
        print_message(&mut out, m, syntax, 0);
    }
    for e in &f.enum_type {
        out.push('\n');
        print_enum(&mut out, e, 0);
    }
    out
}

fn print_enum(out: &mut String, e: &prost_types::EnumDescriptorProto, depth: usize) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!("{pad}enum {} {{\n", e.name()));
    for v in &e.value {
        out.push_str(&format!("{pad}  {} = {};\n", v.name(), v.number()));
    }
    out.push_str(&format!("{pad}}}\n"));
}

fn field_type(f: &FieldDescriptorProto) -> String {
    match (&f.type_name, f.r#type.and_then(|t| Type::try_from(t).ok())) {
        (Some(n), _) => n.clone(),
        (None, Some(t)) => t.as_str_name().trim_start_matches("TYPE_").to_lowercase(),
        (None, None) => "bytes".into(),
    }
}

fn print_field(
    out: &mut String,
    f: &FieldDescriptorProto,
    syntax: &str,
    pad: &str,
    maps: &HashMap<String, &DescriptorProto>,
) {
    let map_entry = f
        .type_name
        .as_deref()
        .and_then(|n| n.rsplit('.').next())
        .and_then(|n| maps.get(n));
    let ty = match map_entry {
        Some(entry) if label(f) == Label::Repeated && entry.field.len() == 2 => format!(
            "map<{}, {}>",
            field_type(&entry.field[0]),
            field_type(&entry.field[1])
        ),
        _ => {
            let label = match label(f) {
                Label::Repeated => "repeated ",
                Label::Required => "required ",
                Label::Optional if syntax == "proto2" || f.proto3_optional() => "optional ",
                Label::Optional => "",
            };
            format!("{label}{}", field_type(f))
        }
    };
    out.push_str(&format!("{pad}{ty} {} = {};\n", f.name(), f.number()));
}

fn print_message(out: &mut String, m: &DescriptorProto, syntax: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!("{pad}message {} {{\n", m.name()));
    let maps: HashMap<String, &DescriptorProto> = m
        .nested_type
        .iter()
        .filter(|n| n.options.as_ref().is_some_and(|o| o.map_entry()))
        .map(|n| (n.name().to_string(), n))
        .collect();
    let inner = format!("{pad}  ");
    for n in m
        .nested_type
        .iter()
        .filter(|n| !maps.contains_key(n.name()))
    {
        print_message(out, n, syntax, depth + 1);
    }
    for e in &m.enum_type {
        print_enum(out, e, depth + 1);
    }
    for f in m
        .field
        .iter()
        .filter(|f| f.oneof_index.is_none() || f.proto3_optional())
    {
        print_field(out, f, syntax, &inner, &maps);
    }
    for (i, o) in m.oneof_decl.iter().enumerate() {
        let members: Vec<&FieldDescriptorProto> = m
            .field
            .iter()
            .filter(|f| f.oneof_index == Some(i as i32) && !f.proto3_optional())
            .collect();
        if members.is_empty() {
            continue;
        }
        out.push_str(&format!("{inner}oneof {} {{\n", o.name()));
        for f in members {
            print_field(out, f, "proto3", &format!("{inner}  "), &maps);
        }
        out.push_str(&format!("{inner}}}\n"));
    }
    out.push_str(&format!("{pad}}}\n"));
}

/// Scalar kinds that read each other's wire values (Confluent's compatible scalar groups).
fn scalar_group(t: Type) -> u8 {
    use Type::*;
    match t {
        String | Bytes => 1,
        Int32 | Uint32 | Int64 | Uint64 | Bool => 2,
        Sint32 | Sint64 => 3,
        Fixed32 | Sfixed32 => 4,
        Fixed64 | Sfixed64 => 5,
        Float => 6,
        Double => 7,
        _ => 0,
    }
}

#[derive(PartialEq)]
enum Kind {
    Scalar(Type),
    Named(String),
}

fn kind(package: &str, f: &FieldDescriptorProto) -> Kind {
    match (&f.type_name, f.r#type.and_then(|t| Type::try_from(t).ok())) {
        (Some(name), _) => Kind::Named(local_name(package, name)),
        (None, Some(t)) => Kind::Scalar(t),
        (None, None) => Kind::Named(String::new()),
    }
}

fn label(f: &FieldDescriptorProto) -> Label {
    f.label
        .and_then(|l| Label::try_from(l).ok())
        .unwrap_or(Label::Optional)
}

/// Why `reader` cannot read what `writer` wrote; empty when it can.
pub fn can_read(reader: &ProtoSchema, writer: &ProtoSchema) -> Vec<String> {
    let mut out = Vec::new();
    let (rp, wp) = (reader.file.package(), writer.file.package());
    if rp != wp {
        out.push(format!("PACKAGE_CHANGED: package '{wp}' became '{rp}'"));
    }
    let readers = reader.messages();
    for (name, w) in writer.messages() {
        let Some(r) = readers.get(&name) else {
            out.push(format!("MESSAGE_REMOVED: message {name} was removed"));
            continue;
        };
        let rfields: HashMap<i32, &FieldDescriptorProto> =
            r.field.iter().map(|f| (f.number(), f)).collect();
        for wf in &w.field {
            let Some(rf) = rfields.get(&wf.number()) else {
                if label(wf) == Label::Required {
                    out.push(format!(
                        "REQUIRED_FIELD_REMOVED: required field {name}.{} was removed",
                        wf.name()
                    ));
                }
                continue;
            };
            let at = format!("{name}.{} (field {})", rf.name(), wf.number());
            match (kind(wp, wf), kind(rp, rf)) {
                (Kind::Scalar(a), Kind::Scalar(b))
                    if a != b && (scalar_group(a) == 0 || scalar_group(a) != scalar_group(b)) =>
                {
                    out.push(format!(
                        "FIELD_SCALAR_KIND_CHANGED: {at} changed from {} to {}",
                        a.as_str_name(),
                        b.as_str_name()
                    ));
                }
                (Kind::Named(a), Kind::Named(b)) if a != b => out.push(format!(
                    "FIELD_NAMED_TYPE_CHANGED: {at} changed from {a} to {b}"
                )),
                (Kind::Scalar(_), Kind::Named(_)) | (Kind::Named(_), Kind::Scalar(_)) => {
                    out.push(format!("FIELD_KIND_CHANGED: {at} changed kind"))
                }
                _ => {}
            }
            let (wl, rl) = (label(wf), label(rf));
            if (wl == Label::Repeated) != (rl == Label::Repeated) {
                out.push(format!(
                    "FIELD_NUMERIC_LABEL_CHANGED: {at} changed between repeated and singular"
                ));
            }
            if (wl == Label::Required) != (rl == Label::Required) {
                out.push(format!(
                    "REQUIRED_FIELD_CHANGED: {at} changed between required and optional"
                ));
            }
            let oneof = |f: &FieldDescriptorProto, m: &DescriptorProto| {
                f.oneof_index
                    .filter(|_| !f.proto3_optional())
                    .and_then(|i| m.oneof_decl.get(i as usize))
                    .map(|o| o.name().to_string())
            };
            if oneof(wf, w) != oneof(rf, r) {
                out.push(format!(
                    "FIELD_ONEOF_CHANGED: {at} moved into or out of a oneof"
                ));
            }
        }
        let wnums: Vec<i32> = w.field.iter().map(|f| f.number()).collect();
        for rf in &r.field {
            if !wnums.contains(&rf.number()) && label(rf) == Label::Required {
                out.push(format!(
                    "REQUIRED_FIELD_ADDED: required field {name}.{} was added",
                    rf.name()
                ));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProtoSchema {
        parse(s).unwrap()
    }

    #[test]
    fn confluents_protobuf_rules() {
        let v1 = p("syntax = \"proto3\"; package x; message M { string a = 1; int32 b = 2; }");
        let added = p(
            "syntax = \"proto3\"; package x; message M { string a = 1; int32 b = 2; bool c = 3; }",
        );
        let removed = p("syntax = \"proto3\"; package x; message M { string a = 1; }");
        let renamed =
            p("syntax = \"proto3\"; package x; message M { string aa = 1; int64 b = 2; }");
        let retyped = p("syntax = \"proto3\"; package x; message M { int32 a = 1; int32 b = 2; }");
        let gone = p("syntax = \"proto3\"; package x; message N { string a = 1; }");
        assert!(can_read(&added, &v1).is_empty());
        assert!(can_read(&removed, &v1).is_empty());
        assert!(can_read(&renamed, &v1).is_empty());
        assert!(can_read(&retyped, &v1)[0].starts_with("FIELD_SCALAR_KIND_CHANGED"));
        assert!(can_read(&gone, &v1)[0].starts_with("MESSAGE_REMOVED"));
        assert!(parse("message {").is_err());
    }

    #[test]
    fn text_and_descriptor_forms_have_one_identity() {
        let text = p("syntax = \"proto3\"; package x; message M { string a = 1; N n = 2; } message N { int32 v = 1; }");
        let b64 = text.serialized();
        let back = parse(&b64).unwrap();
        assert_eq!(text.identity(), back.identity());
        // The printed text parses back to the same schema.
        let printed = back.text();
        assert!(printed.contains("message M {"), "{printed}");
        assert_eq!(parse(&printed).unwrap().identity(), text.identity());
    }
}
