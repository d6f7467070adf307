//! The signal side: connecting with livekit-signaling and the pump task that owns the
//! [`SignalClient`].
//!
//! Why a separate task: `SignalClient::restart` holds the client's state lock for the whole
//! reconnect, so a `send` issued meanwhile would block the connection task and with it the
//! media path. The connection task hands every outgoing message to the pump through a bounded
//! queue and keeps receiving media while a resume is in progress. Invariant: the pump handles
//! commands strictly in order, so a `SyncState` queued after a resume goes out before the held
//! subscription updates are flushed by `set_reconnected`.

use std::time::Duration;

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalError, SignalEvents, SignalOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::LiveKitError;

/// Capacity of the queue of outgoing signal messages.
pub(crate) const SIGNAL_QUEUE: usize = 256;

/// Time between sending Leave and closing the WebSocket.
const LEAVE_GRACE: Duration = Duration::from_millis(50);

/// Delays before each resume attempt.
const RESUME_BACKOFF_MS: [u64; 6] = [0, 250, 500, 1_000, 2_000, 4_000];

/// Work for the pump.
#[derive(Debug)]
pub(crate) enum SignalCmd {
    /// Send a request (queued by the client while resuming unless it is pass-through).
    Send(Box<proto::signal_request::Message>),
    /// Resume the signal connection (`reconnect=1`) after `delay`, up to `attempts` tries.
    Resume { attempts: usize, delay: Duration },
    /// The resume is complete: flush what the client held back.
    SetReconnected,
    /// Close the WebSocket and end the pump.
    Close,
}

/// The outcome of a [`SignalCmd::Resume`].
pub(crate) type ResumeOutcome = Result<(), LiveKitError>;

/// Signal options for a recorder: no auto-subscribe, no adaptive stream, no packet trailers
/// (we do not strip them), no LiveKit Cloud region fail-over (the daemon retries itself).
pub(crate) fn options() -> SignalOptions {
    let mut opts = SignalOptions::default(); // #[non_exhaustive]: start from the default
    opts.auto_subscribe = false;
    opts.adaptive_stream = false;
    opts.region_failover = false;
    opts.client_capabilities.retain(|c| *c != proto::client_info::Capability::CapPacketTrailer);
    opts
}

/// Connects and waits for the JoinResponse (5 s timeouts inside livekit-signaling).
pub(crate) async fn connect(
    url: &str,
    token: &str,
) -> Result<(SignalClient, proto::JoinResponse, SignalEvents), LiveKitError> {
    let (client, join, events) =
        SignalClient::connect(url, token, options(), None).await.map_err(LiveKitError::from_signal)?;
    if join.participant.is_none() || join.ping_interval <= 0 || join.ping_timeout <= 0 {
        client.close().await;
        return Err(LiveKitError::InvalidJoin("no participant or zero ping values"));
    }
    Ok((client, join, events))
}

/// Starts the pump. Outcomes of resumes arrive on the returned receiver.
pub(crate) fn spawn_pump(
    client: SignalClient,
) -> (mpsc::Sender<SignalCmd>, mpsc::Receiver<ResumeOutcome>, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(4);
    let span = tracing::Span::current();
    let task = tokio::spawn(tracing::Instrument::instrument(pump(client, cmd_rx, out_tx), span));
    (cmd_tx, out_rx, task)
}

async fn pump(
    client: SignalClient,
    mut cmds: mpsc::Receiver<SignalCmd>,
    outcomes: mpsc::Sender<ResumeOutcome>,
) {
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            SignalCmd::Send(msg) => {
                let leave = matches!(*msg, proto::signal_request::Message::Leave(_));
                client.send(*msg).await;
                if leave {
                    // Closing right away aborts livekit-signaling's reader; unread bytes in
                    // the socket (pongs) then turn the close into a TCP RST and the server may
                    // discard the Leave it has not read yet (seen with actix-ws). A short grace
                    // lets the server read it first.
                    tokio::time::sleep(LEAVE_GRACE).await;
                    tracing::debug!("leave sent");
                }
            }
            SignalCmd::Resume { attempts, delay } => {
                tokio::time::sleep(delay).await;
                let outcome = resume(&client, attempts).await;
                let _ = outcomes.send(outcome).await;
            }
            SignalCmd::SetReconnected => client.set_reconnected().await,
            SignalCmd::Close => break,
        }
    }
    client.close().await;
    tracing::debug!("signal connection closed");
}

async fn resume(client: &SignalClient, attempts: usize) -> ResumeOutcome {
    let mut last = LiveKitError::Closed;
    for (attempt, delay) in RESUME_BACKOFF_MS.iter().cycle().take(attempts.max(1)).enumerate() {
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        match client.restart(proto::ReconnectReason::RrSignalDisconnected).await {
            Ok(_) => {
                tracing::info!(attempt, "signal connection resumed");
                return Ok(());
            }
            Err(e) => {
                let err = LiveKitError::from_signal(e);
                tracing::info!(attempt, error = %err, "signal resume failed");
                if !err.is_retryable() {
                    return Err(err);
                }
                last = err;
            }
        }
    }
    Err(last)
}

/// Whether a signal error may go away on retry.
pub(crate) fn signal_error_retryable(e: &SignalError) -> bool {
    match e {
        SignalError::Client(status, _) => status.as_u16() == 429,
        SignalError::UrlParse(_)
        | SignalError::TokenFormat
        | SignalError::TransportNotConfigured
        | SignalError::InvalidState(_)
        | SignalError::LeaveRequest { .. } => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_recorder_safe() {
        let o = options();
        assert!(!o.auto_subscribe && !o.adaptive_stream && !o.region_failover);
        assert!(!o.client_capabilities.contains(&proto::client_info::Capability::CapPacketTrailer));
        assert!(!o.single_peer_connection);
    }

    #[test]
    fn configuration_errors_are_permanent() {
        assert!(!signal_error_retryable(&SignalError::TokenFormat));
        assert!(!signal_error_retryable(&SignalError::TransportNotConfigured));
        assert!(signal_error_retryable(&SignalError::Timeout("t".into())));
        assert!(signal_error_retryable(&SignalError::Connection("refused".into())));
    }
}
