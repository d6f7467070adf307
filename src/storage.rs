//! Where recordings go: the local layout ([`layout`]: file names from a template, sanitized so
//! they always stay under `RECORDINGS_DIR`) and the durable journal of recording jobs
//! ([`journal`]).

pub mod journal;
pub mod layout;
