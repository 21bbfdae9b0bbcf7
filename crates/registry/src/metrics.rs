//! The registry's metric names, in one place.

pub const SCHEMAS_REGISTERED: &str = "onepipe_registry_schemas_registered_total";
pub const SCHEMAS_REGISTERED_HELP: &str = "new schema versions registered by this process";
pub const REGISTRATIONS_REFUSED: &str = "onepipe_registry_registrations_refused_total";
pub const REGISTRATIONS_REFUSED_HELP: &str = "registrations refused, by reason";
pub const SUBJECTS: &str = "onepipe_registry_subjects";
pub const SUBJECTS_HELP: &str = "subjects with at least one live version";
pub const TOPICS: &str = "onepipe_registry_topics";
pub const TOPICS_HELP: &str = "topics with metadata";
