//! STUB: the LiveKit-compatible simulator (helper A replaces this).
