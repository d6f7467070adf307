//! Where recordings go: the local layout ([`layout`]: file names from a template, sanitized
//! so they always stay under `RECORDINGS_DIR`) and the S3 upload of finished files ([`s3`]).

pub mod layout;
pub mod s3;
