//! STUB: the subscribe-only LiveKit client (helper B replaces this).
