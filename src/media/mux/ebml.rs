//! STUB: EBML primitives.
