//! Avro schemas: parsed by the `apache-avro` crate (named types from references resolved),
//! compatibility by its reader/writer resolution rules (Avro's SchemaCompatibility), which is
//! what Confluent's registry uses.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::ResolvedReference;
use crate::types::SchemaType;

#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
}

pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<AvroSchema, String> {
    let refs: Vec<&str> = references
        .iter()
        .filter(|r| r.schema_type == SchemaType::Avro)
        .map(|r| r.schema.as_str())
        .collect();
    let schema = if refs.is_empty() {
        Schema::parse_str(text).map_err(|e| e.to_string())?
    } else {
        Schema::parse_str_with_list(text, &refs)
            .map_err(|e| e.to_string())?
            .0
    };
    Ok(AvroSchema { schema })
}

pub fn can_read(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    match SchemaCompatibility::can_read(&writer.schema, &reader.schema) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> AvroSchema {
        parse(s, &[]).unwrap()
    }

    #[test]
    fn field_with_default_is_backward_compatible_without_default_is_not() {
        let v1 = p(r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#);
        let with_default = p(
            r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#,
        );
        let without = p(
            r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#,
        );
        assert!(can_read(&with_default, &v1).is_empty());
        assert!(!can_read(&without, &v1).is_empty());
        // Forward: the old reader ignores the new field.
        assert!(can_read(&v1, &without).is_empty());
        assert!(parse("{\"type\":\"record\"}", &[]).is_err());
        assert!(parse("not json", &[]).is_err());
    }
}
