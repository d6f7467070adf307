//! The ids that cross actor boundaries, as types: a room name, a participant identity, a
//! participant sid, a track sid and a recording id are five different things that all look like
//! strings. Passing one where another is expected is a compile error.
//!
//! Each id:
//! - is (de)serialized as the plain string (the REST JSON, the job journal on disk, the
//!   cluster's Redis state and webhooks read and write exactly what they did with `String`);
//! - is an `Arc<str>` inside: a clone is a reference count, so the per-frame path (every frame
//!   names its track) does not allocate;
//! - derefs to `str`, hashes and orders as its text (`Borrow<str>`: maps keyed by an id are
//!   looked up with a `&str`), and prints as its text (`Display`, and `Debug` as a quoted
//!   string, as `String` did).
//!
//! ```
//! use livekit_recorder::ids::{Identity, TrackSid};
//! fn wants_track(_: &TrackSid) {}
//! wants_track(&TrackSid::from("TR_a"));
//! ```
//! An identity where a track sid is expected does not compile:
//! ```compile_fail,E0308
//! use livekit_recorder::ids::{Identity, TrackSid};
//! fn wants_track(_: &TrackSid) {}
//! wants_track(&Identity::from("alice"));
//! ```
//!
//! They carry no validation: untrusted input (REST, webhooks) is checked where it arrives
//! (`http::routes::field`, `http::webhooks`) before it becomes an id. In the OpenAPI contract
//! an id field is a plain string (`#[schema(value_type = String)]` where a type derives it).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id with this text (not validated; see the module's docs).
            pub fn new(s: impl Into<Arc<str>>) -> $name {
                $name(s.into())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s.into())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.into())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> $name {
                $name(s.as_str().into())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.as_ref().to_owned()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &*self.0 == other.as_str()
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == &*other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == &*other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == &*other.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                String::deserialize(d).map($name::from)
            }
        }
    };
}

id_type! {
    /// A LiveKit room's name.
    RoomName
}

id_type! {
    /// A participant's identity (from its token; stable across its sessions).
    Identity
}

id_type! {
    /// One session of a participant (`PA_...`, assigned by the server; a rejoin gets a new one).
    ParticipantSid
}

id_type! {
    /// A published track (`TR_...`).
    TrackSid
}

id_type! {
    /// A recording (`RC_` and 12 hex digits, see [`crate::recording::new_recording_id`]).
    RecordingId
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn ids_serialize_as_their_plain_string() {
        let id = RecordingId::from("RC_0123456789ab");
        assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string("RC_0123456789ab").unwrap());
        let back: RecordingId = serde_json::from_str("\"RC_0123456789ab\"").unwrap();
        assert_eq!(back, id);
        // text that needs escaping survives the round trip
        let odd = RoomName::from("a \"room\"\\ é");
        let json = serde_json::to_string(&odd).unwrap();
        assert_eq!(json, serde_json::to_string("a \"room\"\\ é").unwrap());
        assert_eq!(serde_json::from_str::<RoomName>(&json).unwrap(), odd);
        // a non-string is refused, as it was for `String`
        assert!(serde_json::from_str::<TrackSid>("12").is_err());
    }

    #[test]
    fn ids_print_compare_and_look_up_as_their_text() {
        let sid = TrackSid::from("TR_a");
        assert_eq!(sid.to_string(), "TR_a");
        assert_eq!(format!("{sid:?}"), format!("{:?}", "TR_a"));
        assert_eq!(sid, "TR_a");
        assert_eq!("TR_a", sid);
        assert_eq!(sid.as_str(), "TR_a");
        let mut by_sid: HashMap<TrackSid, u32> = HashMap::new();
        by_sid.insert(sid.clone(), 1);
        assert_eq!(by_sid.get("TR_a"), Some(&1));
        assert!(!by_sid.contains_key("TR_b"));
        // orders as the text (list cursors and BTreeMaps depend on it)
        let mut ids: Vec<RecordingId> = ["RC_2", "RC_10", "RC_1"].map(RecordingId::from).to_vec();
        ids.sort();
        assert_eq!(ids, ["RC_1", "RC_10", "RC_2"]);
        // a clone shares the text
        let c = sid.clone();
        assert!(std::ptr::eq(sid.as_str(), c.as_str()));
    }
}
