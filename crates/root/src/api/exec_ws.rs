//! `GET /api/v1/instances/{id}/exec` as a WebSocket: the same command and the same
//! [`canopy_tier::wire`] frames as the upgraded `POST` (`exec.rs`), one or more whole frames
//! per binary message, for browsers, which cannot speak a custom upgrade.
//!
//! A browser's WebSocket cannot send `Authorization` either: it offers its token as a
//! subprotocol, `canopy.bearer.<token>`, beside [`SUBPROTOCOL`], which the answer selects.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::exec::exec_request;
use super::streams::open;
use crate::auth::{Action, Principal};
use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use canopy_tier::pb::open_stream::Kind;
use canopy_tier::streams::{End, Frame, Pipe};
use canopy_tier::wire;

/// The subprotocol the dashboard speaks (and the server selects).
pub const SUBPROTOCOL: &str = "canopy.exec";
/// The prefix of the subprotocol that carries a bearer token.
pub const BEARER_PREFIX: &str = "canopy.bearer.";

/// The token a WebSocket handshake offers as a `canopy.bearer.<token>` subprotocol.
pub fn subprotocol_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(BEARER_PREFIX))
        .filter(|token| !token.is_empty())
        .map(str::to_string)
}

/// Runs a command in a running instance over a WebSocket (the browser's exec).
#[utoipa::path(get, path = "/api/v1/instances/{id}/exec", tag = "instances",
    params(
        ("id" = String, Path),
        ("command" = Vec<String>, Query, description = "The program and its arguments, one `command=` each, in order"),
        ("tty" = Option<bool>, Query, description = "Run it on a pseudo-terminal"),
        ("cols" = Option<u16>, Query, description = "The terminal's initial width"),
        ("rows" = Option<u16>, Query, description = "The terminal's initial height"),
    ),
    responses(
        (status = 101, description = "Switched to a WebSocket (subprotocol `canopy.exec`): each binary message holds whole `canopy-stream` frames (kind u8, length u32 BE, payload), as on the upgraded POST"),
        (status = 400, description = "No command, or not a WebSocket handshake", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not running, or its runtime cannot exec", body = ErrorBody),
        (status = 503, description = "Its cluster or node cannot be reached", body = ErrorBody)))]
pub async fn exec_ws(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let instance = state.desired.get_instance(&id).await?;
    principal.require(Action::Exec, Some(&instance.namespace))?;
    let Query(pairs) = query?;
    let kind = Kind::Exec(exec_request(&pairs)?);
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(format!(
            "this endpoint needs a WebSocket handshake: {}",
            rejection.body_text()
        ))
    })?;
    let pipe = open(&state, &instance, kind).await?;
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| relay(socket, pipe)))
}

/// Relays frames between the socket and the session until the session ends (its end goes
/// out, then a close) or the browser goes (the session is ended for it).
async fn relay(mut socket: WebSocket, pipe: Pipe) {
    let Pipe { tx, mut rx } = pipe;
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let frame = frame.unwrap_or_else(|| {
                    Frame::End(End::error("unavailable", "the stream broke off"))
                });
                let last = matches!(frame, Frame::End(_));
                let bytes = wire::encode(&frame);
                if socket.send(Message::Binary(bytes.into())).await.is_err() {
                    let _ = tx.send(Frame::End(End::error("unavailable", "the client went away"))).await;
                    return;
                }
                if last {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            }
            message = socket.recv() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(_))) => {
                        let end = End::error("bad_request", "frames go in binary messages");
                        let _ = socket.send(Message::Binary(wire::encode(&Frame::End(end.clone())).into())).await;
                        let _ = tx.send(Frame::End(end)).await;
                        return;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        let _ = tx.send(Frame::End(End::error("unavailable", "the client went away"))).await;
                        return;
                    }
                };
                buf.extend_from_slice(&data);
                loop {
                    match wire::decode(&mut buf) {
                        Ok(Some(frame)) => {
                            if tx.send(frame).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let end = End::error("bad_request", e.to_string());
                            let _ = socket.send(Message::Binary(wire::encode(&Frame::End(end.clone())).into())).await;
                            let _ = tx.send(Frame::End(end)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_is_found_among_the_offered_subprotocols() {
        let mut headers = HeaderMap::new();
        assert_eq!(subprotocol_token(&headers), None);
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("canopy.exec, canopy.bearer.eyJ.a-b_c.d"),
        );
        assert_eq!(subprotocol_token(&headers).as_deref(), Some("eyJ.a-b_c.d"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("canopy.exec, canopy.bearer."),
        );
        assert_eq!(subprotocol_token(&headers), None);
    }
}
