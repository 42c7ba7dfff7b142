//! The records of the `_schemas` topic, in Confluent Schema Registry's layout, so a registry
//! (ours or Confluent's) reading the same topic sees the same subjects and ids. Keys and values
//! are JSON; a null value (tombstone) deletes a key permanently.

use serde::{Deserialize, Serialize};

use crate::types::{Compatibility, Mode, Reference, SchemaType};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "keytype")]
pub enum StoreKey {
    #[serde(rename = "SCHEMA")]
    Schema {
        subject: String,
        version: i32,
        magic: i32,
    },
    #[serde(rename = "CONFIG")]
    Config { subject: Option<String>, magic: i32 },
    #[serde(rename = "MODE")]
    Mode { subject: Option<String>, magic: i32 },
    #[serde(rename = "DELETE_SUBJECT")]
    DeleteSubject { subject: String, magic: i32 },
    #[serde(rename = "CLEAR_SUBJECT")]
    ClearSubject { subject: String, magic: i32 },
    #[serde(rename = "NOOP")]
    Noop { magic: i32 },
}

impl StoreKey {
    pub fn schema(subject: &str, version: i32) -> StoreKey {
        StoreKey::Schema {
            subject: subject.to_string(),
            version,
            magic: 1,
        }
    }
    pub fn config(subject: Option<&str>) -> StoreKey {
        StoreKey::Config {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }
    pub fn mode(subject: Option<&str>) -> StoreKey {
        StoreKey::Mode {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }
    pub fn delete_subject(subject: &str) -> StoreKey {
        StoreKey::DeleteSubject {
            subject: subject.to_string(),
            magic: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: Compatibility,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

/// A record to write: the key and its value (None = tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWrite {
    pub key: StoreKey,
    pub value: Option<serde_json::Value>,
}

impl StoreWrite {
    pub fn put(key: StoreKey, value: impl Serialize) -> StoreWrite {
        StoreWrite {
            key,
            value: serde_json::to_value(value).ok(),
        }
    }
    pub fn tombstone(key: StoreKey) -> StoreWrite {
        StoreWrite { key, value: None }
    }
    pub fn key_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.key).unwrap_or_default()
    }
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        self.value
            .as_ref()
            .map(|v| serde_json::to_vec(v).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_confluents_layout() {
        let k = serde_json::to_string(&StoreKey::schema("t-value", 3)).unwrap();
        assert_eq!(
            k,
            r#"{"keytype":"SCHEMA","subject":"t-value","version":3,"magic":1}"#
        );
        let k = serde_json::to_string(&StoreKey::config(None)).unwrap();
        assert_eq!(k, r#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
        let parsed: StoreKey = serde_json::from_str(r#"{"magic":0,"keytype":"NOOP"}"#).unwrap();
        assert_eq!(parsed, StoreKey::Noop { magic: 0 });
        let v = SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 1,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"string\"".into(),
            deleted: false,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"subject":"s","version":1,"id":1,"schema":"\"string\"","deleted":false}"#
        );
    }
}
