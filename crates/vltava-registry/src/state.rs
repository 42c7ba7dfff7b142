//! The registry as a state machine: [`RegistryState::apply`] folds `_schemas` records into
//! subjects, versions, ids, configs and modes; the operations decide what records a request must
//! write (or which error it gets) without doing any I/O. The store layer writes those records to
//! Kafka and waits until they have been applied here, so every registry reading the topic ends up
//! in the same state and ids are stable across restarts.

use std::collections::{BTreeMap, HashMap};

use crate::schema::{self, ParsedSchema, ResolvedReference, SchemaError};
use crate::store_format::{
    ConfigValue, DeleteSubjectValue, ModeValue, SchemaValue, StoreKey, StoreWrite,
};
use crate::types::{Compatibility, Mode, Reference, RegistryError, SchemaType};

pub const DEFAULT_COMPATIBILITY: Compatibility = Compatibility::Backward;

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
    pub deleted: bool,
}

/// A registration request.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
    /// IMPORT mode only: the id and version to register under.
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// What a registration decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub id: i32,
    pub version: i32,
    /// Records to write; empty when the schema was already registered.
    pub writes: Vec<StoreWrite>,
}

#[derive(Debug, Default, Clone)]
pub struct RegistryState {
    versions: BTreeMap<(String, i32), Version>,
    /// id → (type, canonical text, references) of the schema first registered with it.
    ids: HashMap<i32, (SchemaType, String, Vec<Reference>)>,
    global_compat: Option<Compatibility>,
    subject_compat: HashMap<String, Compatibility>,
    global_mode: Option<Mode>,
    subject_mode: HashMap<String, Mode>,
    max_id: i32,
}

/// Version selectors as the API takes them: a number, `latest` or -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSel {
    Latest,
    Number(i32),
}

impl VersionSel {
    pub fn parse(s: &str) -> Result<VersionSel, RegistryError> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(VersionSel::Latest);
        }
        match s.parse::<i32>() {
            Ok(-1) => Ok(VersionSel::Latest),
            Ok(n) if n >= 1 => Ok(VersionSel::Number(n)),
            _ => Err(RegistryError::invalid_version(s)),
        }
    }
}

impl RegistryState {
    /// Applies one `_schemas` record (key and value as JSON bytes; `None` is a tombstone).
    /// Unreadable records are skipped, as Confluent's registry skips them.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(key) = serde_json::from_slice::<StoreKey>(key) else {
            return;
        };
        match key {
            StoreKey::Schema {
                subject, version, ..
            } => match value.map(serde_json::from_slice::<SchemaValue>) {
                Some(Ok(v)) => {
                    self.max_id = self.max_id.max(v.id);
                    self.ids
                        .entry(v.id)
                        .or_insert_with(|| (v.schema_type, v.schema.clone(), v.references.clone()));
                    self.versions.insert(
                        (subject, version),
                        Version {
                            subject: v.subject,
                            version: v.version,
                            id: v.id,
                            schema_type: v.schema_type,
                            schema: v.schema,
                            references: v.references,
                            deleted: v.deleted,
                        },
                    );
                }
                Some(Err(_)) => {}
                None => {
                    self.versions.remove(&(subject, version));
                }
            },
            StoreKey::Config { subject, .. } => {
                let level = value
                    .and_then(|v| serde_json::from_slice::<ConfigValue>(v).ok())
                    .map(|c| c.compatibility_level);
                match (subject, level) {
                    (None, l) => self.global_compat = l,
                    (Some(s), Some(l)) => {
                        self.subject_compat.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.subject_compat.remove(&s);
                    }
                }
            }
            StoreKey::Mode { subject, .. } => {
                let mode = value
                    .and_then(|v| serde_json::from_slice::<ModeValue>(v).ok())
                    .map(|m| m.mode);
                match (subject, mode) {
                    (None, m) => self.global_mode = m,
                    (Some(s), Some(m)) => {
                        self.subject_mode.insert(s, m);
                    }
                    (Some(s), None) => {
                        self.subject_mode.remove(&s);
                    }
                }
            }
            StoreKey::DeleteSubject { subject, .. } => {
                let upto = value
                    .and_then(|v| serde_json::from_slice::<DeleteSubjectValue>(v).ok())
                    .map_or(i32::MAX, |d| d.version);
                for ((s, n), v) in self.versions.iter_mut() {
                    if *s == subject && *n <= upto {
                        v.deleted = true;
                    }
                }
            }
            StoreKey::ClearSubject { .. } | StoreKey::Noop { .. } => {}
        }
    }

    // ---- queries ----

    pub fn subjects(&self, include_deleted: bool, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ((s, _), v) in &self.versions {
            if (include_deleted || !v.deleted) && s.starts_with(prefix) && out.last() != Some(s) {
                out.push(s.clone());
            }
        }
        out
    }

    fn subject_versions(&self, subject: &str) -> impl Iterator<Item = &Version> {
        self.versions
            .range((subject.to_string(), i32::MIN)..=(subject.to_string(), i32::MAX))
            .map(|(_, v)| v)
    }

    /// The subject's versions; 40401 when it has no live one (or none at all with `deleted`).
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<&Version>, RegistryError> {
        let v: Vec<&Version> = self
            .subject_versions(subject)
            .filter(|v| include_deleted || !v.deleted)
            .collect();
        if v.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(v)
    }

    pub fn version(
        &self,
        subject: &str,
        sel: VersionSel,
        include_deleted: bool,
    ) -> Result<&Version, RegistryError> {
        let all = self.versions(subject, include_deleted)?;
        match sel {
            VersionSel::Latest => all
                .last()
                .copied()
                .ok_or_else(|| RegistryError::subject_not_found(subject)),
            VersionSel::Number(n) => all
                .into_iter()
                .find(|v| v.version == n)
                .ok_or_else(|| RegistryError::version_not_found(n)),
        }
    }

    pub fn schema_by_id(&self, id: i32) -> Result<(SchemaType, &str, &[Reference]), RegistryError> {
        self.ids
            .get(&id)
            .map(|(t, s, r)| (*t, s.as_str(), r.as_slice()))
            .ok_or_else(|| RegistryError::id_not_found(id))
    }

    /// (subject, version) pairs using schema `id`.
    pub fn id_usages(&self, id: i32, include_deleted: bool) -> Vec<(&str, i32)> {
        self.versions
            .values()
            .filter(|v| v.id == id && (include_deleted || !v.deleted))
            .map(|v| (v.subject.as_str(), v.version))
            .collect()
    }

    pub fn ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.ids.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of schemas whose references name `subject` / `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .versions
            .values()
            .filter(|v| !v.deleted)
            .filter(|v| {
                v.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn global_compatibility(&self) -> Compatibility {
        self.global_compat.unwrap_or(DEFAULT_COMPATIBILITY)
    }
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subject_compat.get(subject).copied()
    }
    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }
    pub fn global_mode(&self) -> Mode {
        self.global_mode.unwrap_or(Mode::Readwrite)
    }
    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.subject_mode.get(subject).copied()
    }
    pub fn effective_mode(&self, subject: &str) -> Mode {
        self.subject_mode(subject)
            .unwrap_or_else(|| self.global_mode())
    }
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    // ---- parsing with references ----

    /// Resolves `refs` to the schemas they name (recursively, referenced schemas first).
    pub fn resolve_references(
        &self,
        refs: &[Reference],
    ) -> Result<Vec<ResolvedReference>, RegistryError> {
        let mut out = Vec::new();
        self.resolve_into(refs, &mut out, 0)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        refs: &[Reference],
        out: &mut Vec<ResolvedReference>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > 32 {
            return Err(RegistryError::invalid_schema("references nest too deeply"));
        }
        for r in refs {
            let v = self
                .version(&r.subject, VersionSel::Number(r.version), true)
                .map_err(|_| {
                    RegistryError::invalid_schema(format!(
                        "reference '{}' names subject '{}' version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            self.resolve_into(&v.references, out, depth + 1)?;
            if !out.iter().any(|x| x.name == r.name) {
                out.push(ResolvedReference {
                    name: r.name.clone(),
                    schema_type: v.schema_type,
                    schema: v.schema.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        refs: &[Reference],
    ) -> Result<ParsedSchema, RegistryError> {
        let resolved = self.resolve_references(refs)?;
        schema::parse(schema_type, text, &resolved).map_err(|e| match e {
            SchemaError::Invalid(m) => {
                RegistryError::invalid_schema(format!("of type {}: {m}", schema_type.name()))
            }
            SchemaError::Unavailable(m) => RegistryError::internal(m),
        })
    }

    fn parse_version(&self, v: &Version) -> Option<ParsedSchema> {
        self.parse(v.schema_type, &v.schema, &v.references).ok()
    }

    // ---- operations ----

    /// The live version of `subject` holding exactly this schema.
    pub fn lookup(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
        refs: &[Reference],
        include_deleted: bool,
    ) -> Result<&Version, RegistryError> {
        let versions = self.versions(subject, include_deleted)?;
        versions
            .into_iter()
            .find(|v| {
                v.schema_type == parsed.schema_type
                    && v.references == refs
                    && self
                        .parse_version(v)
                        .is_some_and(|p| p.identity == parsed.identity)
            })
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Checks `parsed` against the subject's live versions at its compatibility level.
    pub fn compatibility_messages(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
        against: Option<VersionSel>,
    ) -> Result<Vec<String>, RegistryError> {
        let level = self.effective_compatibility(subject);
        let live: Vec<&Version> = self
            .subject_versions(subject)
            .filter(|v| !v.deleted)
            .collect();
        let previous: Vec<(i32, ParsedSchema)> = match against {
            // A named version (or `latest`) is the one compared with, whatever the level.
            Some(sel) => {
                let v = match sel {
                    VersionSel::Number(n) => live
                        .iter()
                        .find(|v| v.version == n)
                        .ok_or_else(|| RegistryError::version_not_found(n))?,
                    VersionSel::Latest => match live.last() {
                        Some(v) => v,
                        None => return Ok(Vec::new()),
                    },
                };
                self.parse_version(v)
                    .map(|p| (v.version, p))
                    .into_iter()
                    .collect()
            }
            None => live
                .iter()
                .filter_map(|v| self.parse_version(v).map(|p| (v.version, p)))
                .collect(),
        };
        Ok(schema::check(level, parsed, &previous))
    }

    fn check_writable(&self, subject: &str) -> Result<Mode, RegistryError> {
        let mode = self.effective_mode(subject);
        if matches!(mode, Mode::Readonly | Mode::ReadonlyOverride) {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        Ok(mode)
    }

    /// Decides a registration (Confluent's `POST /subjects/{s}/versions`).
    pub fn register(&self, subject: &str, req: &NewSchema) -> Result<Registration, RegistryError> {
        let mode = self.check_writable(subject)?;
        let parsed = self.parse(req.schema_type, &req.schema, &req.references)?;
        if mode != Mode::Import
            && (req.id.is_some_and(|i| i >= 0) || req.version.is_some_and(|v| v >= 1))
        {
            if let Ok(existing) = self.lookup(subject, &parsed, &req.references, false) {
                if req.id.is_none_or(|i| i == existing.id) {
                    return Ok(Registration {
                        id: existing.id,
                        version: existing.version,
                        writes: Vec::new(),
                    });
                }
            }
            return Err(RegistryError::not_permitted(
                "Overwrite new schema with id or version is not permitted outside IMPORT mode",
            ));
        }
        if mode == Mode::Import && req.id.is_none_or(|i| i < 0) {
            return Err(RegistryError::not_permitted(
                "A schema id must be given to register a schema in IMPORT mode",
            ));
        }
        if mode != Mode::Import {
            if let Ok(existing) = self.lookup(subject, &parsed, &req.references, false) {
                return Ok(Registration {
                    id: existing.id,
                    version: existing.version,
                    writes: Vec::new(),
                });
            }
            let messages = self.compatibility_messages(subject, &parsed, None)?;
            if !messages.is_empty() {
                return Err(RegistryError::incompatible(format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    messages.join(", ")
                )));
            }
        }
        // The same schema elsewhere keeps its id.
        let same = self.ids.iter().find(|(_, (t, text, refs))| {
            *t == parsed.schema_type
                && *refs == req.references
                && self
                    .parse(*t, text, refs)
                    .is_ok_and(|p| p.identity == parsed.identity)
        });
        let id = match (req.id.filter(|i| *i >= 0), same) {
            (Some(id), _) => {
                if let Some((t, text, _)) = self.ids.get(&id) {
                    let matches = self
                        .parse(*t, text, &req.references)
                        .is_ok_and(|p| p.identity == parsed.identity);
                    if !matches {
                        return Err(RegistryError::not_permitted(format!(
                            "Overwrite new schema with id {id} is not permitted: the id holds another schema"
                        )));
                    }
                }
                id
            }
            (None, Some((&id, _))) => id,
            (None, None) => self.max_id + 1,
        };
        let latest = self.subject_versions(subject).map(|v| v.version).max();
        let version = match req.version.filter(|v| *v >= 1) {
            Some(v) => {
                if self.versions.contains_key(&(subject.to_string(), v)) {
                    return Err(RegistryError::not_permitted(format!(
                        "Version {v} of subject {subject} already exists"
                    )));
                }
                v
            }
            None => latest.unwrap_or(0) + 1,
        };
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: parsed.schema_type,
            references: req.references.clone(),
            schema: parsed.canonical.clone(),
            deleted: false,
        };
        Ok(Registration {
            id,
            version,
            writes: vec![StoreWrite::put(StoreKey::schema(subject, version), value)],
        })
    }

    /// `DELETE /subjects/{s}/versions/{v}`: the records to write and the deleted version number.
    pub fn delete_version(
        &self,
        subject: &str,
        sel: VersionSel,
        permanent: bool,
    ) -> Result<(i32, Vec<StoreWrite>), RegistryError> {
        self.check_writable(subject)?;
        let include_deleted = permanent || matches!(sel, VersionSel::Number(_));
        let v = self.version(subject, sel, include_deleted)?;
        if !self.referenced_by(subject, v.version).is_empty() {
            return Err(RegistryError::reference_exists(subject, v.version));
        }
        if permanent {
            if !v.deleted {
                return Err(RegistryError::version_not_soft_deleted(subject, v.version));
            }
            return Ok((
                v.version,
                vec![StoreWrite::tombstone(StoreKey::schema(subject, v.version))],
            ));
        }
        if v.deleted {
            return Err(RegistryError::version_soft_deleted(subject, v.version));
        }
        let value = SchemaValue {
            subject: subject.to_string(),
            version: v.version,
            id: v.id,
            schema_type: v.schema_type,
            references: v.references.clone(),
            schema: v.schema.clone(),
            deleted: true,
        };
        Ok((
            v.version,
            vec![StoreWrite::put(StoreKey::schema(subject, v.version), value)],
        ))
    }

    /// `DELETE /subjects/{s}`: the records to write and the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<StoreWrite>), RegistryError> {
        self.check_writable(subject)?;
        let all = self.versions(subject, true)?;
        let live: Vec<&&Version> = all.iter().filter(|v| !v.deleted).collect();
        for v in &all {
            if !self.referenced_by(subject, v.version).is_empty() {
                return Err(RegistryError::reference_exists(subject, v.version));
            }
        }
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::subject_not_soft_deleted(subject));
            }
            let mut writes: Vec<StoreWrite> = all
                .iter()
                .map(|v| StoreWrite::tombstone(StoreKey::schema(subject, v.version)))
                .collect();
            if self.subject_compat.contains_key(subject) {
                writes.push(StoreWrite::tombstone(StoreKey::config(Some(subject))));
            }
            if self.subject_mode.contains_key(subject) {
                writes.push(StoreWrite::tombstone(StoreKey::mode(Some(subject))));
            }
            return Ok((all.iter().map(|v| v.version).collect(), writes));
        }
        if live.is_empty() {
            return Err(RegistryError::subject_soft_deleted(subject));
        }
        let latest = live.iter().map(|v| v.version).max().unwrap_or(0);
        let writes = vec![StoreWrite::put(
            StoreKey::delete_subject(subject),
            DeleteSubjectValue {
                subject: subject.to_string(),
                version: latest,
            },
        )];
        Ok((live.iter().map(|v| v.version).collect(), writes))
    }

    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<Vec<StoreWrite>, RegistryError> {
        if let Some(s) = subject {
            self.check_writable(s)?;
        }
        Ok(vec![StoreWrite::put(
            StoreKey::config(subject),
            ConfigValue {
                compatibility_level: level,
            },
        )])
    }

    pub fn delete_compatibility(&self, subject: Option<&str>) -> Vec<StoreWrite> {
        vec![StoreWrite::tombstone(StoreKey::config(subject))]
    }

    pub fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<Vec<StoreWrite>, RegistryError> {
        if mode == Mode::Import && !force {
            let has_schemas = match subject {
                Some(s) => self.subject_versions(s).next().is_some(),
                None => !self.is_empty(),
            };
            if has_schemas {
                return Err(RegistryError::not_permitted(
                    "Cannot import since found existing subjects",
                ));
            }
        }
        Ok(vec![StoreWrite::put(
            StoreKey::mode(subject),
            ModeValue { mode },
        )])
    }

    pub fn delete_mode(&self, subject: &str) -> Vec<StoreWrite> {
        vec![StoreWrite::tombstone(StoreKey::mode(Some(subject)))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(state: &mut RegistryState, writes: &[StoreWrite]) {
        for w in writes {
            state.apply(&w.key_bytes(), w.value_bytes().as_deref());
        }
    }

    fn avro(s: &str) -> NewSchema {
        NewSchema {
            schema_type: SchemaType::Avro,
            schema: s.to_string(),
            references: vec![],
            id: None,
            version: None,
        }
    }

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"T","fields":[{"name":"c","type":"int"}]}"#;

    #[test]
    fn register_is_idempotent_and_ids_are_shared_across_subjects() {
        let mut s = RegistryState::default();
        let r = s.register("a-value", &avro(V1)).unwrap();
        assert_eq!((r.id, r.version), (1, 1));
        apply_all(&mut s, &r.writes);
        let again = s.register("a-value", &avro(&format!(" {V1}\n"))).unwrap();
        assert_eq!((again.id, again.version), (1, 1));
        assert!(again.writes.is_empty());
        let other = s.register("b-value", &avro(V1)).unwrap();
        assert_eq!((other.id, other.version), (1, 1));
        assert_eq!(other.writes.len(), 1);
        apply_all(&mut s, &other.writes);
        let r2 = s.register("a-value", &avro(V2)).unwrap();
        assert_eq!((r2.id, r2.version), (2, 2));
        apply_all(&mut s, &r2.writes);
        let err = s.register("a-value", &avro(BAD)).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(s.subjects(false, ""), vec!["a-value", "b-value"]);
        assert_eq!(s.id_usages(1, false), vec![("a-value", 1), ("b-value", 1)]);
    }

    #[test]
    fn deletes_soft_then_hard_and_modes() {
        let mut s = RegistryState::default();
        let r = s.register("x", &avro(V1)).unwrap();
        apply_all(&mut s, &r.writes);
        assert_eq!(s.delete_subject("x", true).unwrap_err().code, 40405);
        let (versions, w) = s.delete_subject("x", false).unwrap();
        assert_eq!(versions, vec![1]);
        apply_all(&mut s, &w);
        assert!(s.subjects(false, "").is_empty());
        assert_eq!(s.subjects(true, ""), vec!["x"]);
        assert_eq!(s.versions("x", false).unwrap_err().code, 40401);
        let (_, w) = s.delete_subject("x", true).unwrap();
        apply_all(&mut s, &w);
        assert!(s.subjects(true, "").is_empty());
        // The id stays resolvable, and a new schema gets a new id.
        assert!(s.schema_by_id(1).is_ok());
        let w = s.set_mode(None, Mode::Readonly, false).unwrap();
        apply_all(&mut s, &w);
        assert_eq!(s.register("x", &avro(V2)).unwrap_err().code, 42205);
        let w = s.set_mode(None, Mode::Readwrite, false).unwrap();
        apply_all(&mut s, &w);
        let r = s.register("x", &avro(V2)).unwrap();
        assert_eq!(r.id, 2);
        apply_all(&mut s, &r.writes);
        assert_eq!(
            s.set_mode(None, Mode::Import, false).unwrap_err().code,
            42205
        );
        assert!(s.set_mode(None, Mode::Import, true).is_ok());
    }
}
