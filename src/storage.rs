//! Where recordings go: the local layout ([`layout`]: file names from a template, sanitized so
//! they always stay under `RECORDINGS_DIR`), the durable journal of recording jobs and of the
//! ended recordings' history ([`journal`], retention in [`history`]) and the S3 upload of
//! finished files ([`s3`]).

pub mod history;
pub mod journal;
pub mod layout;
pub mod s3;
