//! Join tokens for the recorder's bots.
//!
//! Invariant: a recorder token can only subscribe. It carries `roomJoin` for exactly one room,
//! `hidden` (never visible to other participants, does not keep the room open), `recorder`,
//! `canSubscribe=true`, `canPublish=false`, `canPublishData=false` and `kind=egress`, the
//! grants LiveKit's own egress uses. Bot identities start with [`RECORDER_IDENTITY_PREFIX`] so
//! the daemon can recognise (and ignore) its own bots in webhooks.

use std::time::Duration;

use livekit_api::access_token::{AccessToken, AccessTokenError, VideoGrants};

/// Prefix of every identity the recorder joins rooms with.
pub const RECORDER_IDENTITY_PREFIX: &str = "lkrec-";

/// Whether `identity` belongs to one of our recorder bots.
pub fn is_recorder_identity(identity: &str) -> bool {
    identity.starts_with(RECORDER_IDENTITY_PREFIX)
}

/// `identity` with [`RECORDER_IDENTITY_PREFIX`] added unless it already has it.
pub fn recorder_identity(identity: &str) -> String {
    if is_recorder_identity(identity) {
        identity.to_owned()
    } else {
        format!("{RECORDER_IDENTITY_PREFIX}{identity}")
    }
}

/// The grants of a hidden, subscribe-only recorder in `room`.
pub fn recorder_grants(room: &str) -> VideoGrants {
    VideoGrants {
        room_join: true,
        room: room.to_owned(),
        can_subscribe: Some(true),
        can_publish: Some(false),
        can_publish_data: Some(false),
        hidden: true,
        recorder: true,
        ..Default::default()
    }
}

/// Signs a JWT that lets a recorder bot join `room` as `identity` (prefixed with
/// [`RECORDER_IDENTITY_PREFIX`] if needed) for `ttl`.
///
/// Fails only on unusable keys (empty key or secret) or an encoding error.
pub fn recorder_token(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    ttl: Duration,
) -> Result<String, AccessTokenError> {
    if api_key.is_empty() || api_secret.is_empty() {
        return Err(AccessTokenError::InvalidKeys);
    }
    AccessToken::with_api_key(api_key, api_secret)
        .with_identity(&recorder_identity(identity))
        .with_kind("egress")
        .with_ttl(ttl)
        .with_grants(recorder_grants(room))
        .to_jwt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::TokenVerifier;

    const KEY: &str = "devkey";
    const SECRET: &str = "devsecret-devsecret-devsecret-0123";

    #[test]
    fn grants_round_trip_through_the_verifier() {
        let jwt = recorder_token(KEY, SECRET, "room1", "r1", Duration::from_secs(60)).unwrap();
        let claims = TokenVerifier::with_api_key(KEY, SECRET).verify(&jwt).unwrap();
        assert_eq!(claims.sub, "lkrec-r1");
        assert_eq!(claims.kind, "egress");
        let v = &claims.video;
        assert!(v.room_join && v.hidden && v.recorder && v.can_subscribe());
        assert!(!v.can_publish() && !v.can_publish_data());
        assert_eq!(v.room, "room1");
        assert!(TokenVerifier::with_api_key(KEY, "wrong-secret").verify(&jwt).is_err());
    }

    #[test]
    fn identity_prefix_is_added_once() {
        assert_eq!(recorder_identity("lkrec-x"), "lkrec-x");
        assert_eq!(recorder_identity("x"), "lkrec-x");
        assert!(is_recorder_identity("lkrec-abc"));
        assert!(!is_recorder_identity("alice"));
    }

    #[test]
    fn empty_keys_are_rejected() {
        assert!(recorder_token("", SECRET, "r", "i", Duration::from_secs(1)).is_err());
    }
}
