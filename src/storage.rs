//! Where recordings go. For now only the local layout ([`layout`]): file names from a template,
//! sanitized so they always stay under `RECORDINGS_DIR`. S3 uploads are not built yet.

pub mod layout;
