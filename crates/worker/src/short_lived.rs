//! Sockets accepted only to be told why they are refused: a bad join, a
//! misconfigured Worker. They use the standard WebSocket API, not the
//! hibernation API, so that the close completes at once: workerd keeps the
//! connection of a hibernatable socket the object closes from `fetch` open
//! until the object hibernates (README, "Closes under wrangler dev").

use longhouse_core::{CloseCode, ConnId, Output, ServerMessage};
use worker::{Request, Response, Result, WebSocketPair};

use crate::config::ConfigError;

/// A WebSocket response that carries out `outputs` (the refused socket's
/// sends and its close) and nothing else.
pub fn refusal(outputs: &[Output]) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    for output in outputs {
        match output {
            Output::Send { text, .. } => pair.server.send_with_str(text)?,
            Output::Close { code, .. } => {
                pair.server.close(Some(code.code()), Some(code.reason()))?;
            }
        }
    }
    Response::from_websocket(pair.client)
}

/// The answer to every request while a var is unusable: a WebSocket join
/// gets the message as an error and close 1011; any plain HTTP request,
/// `/health` included (so that a deploy check notices), a 500 with it.
pub fn misconfigured(req: &Request, error: &ConfigError) -> Result<Response> {
    worker::console_error!(
        "{}",
        serde_json::json!({ "event": "config error", "var": error.var, "error": error.to_string() })
    );
    let message = error.public_message();
    if !crate::is_websocket_upgrade(req) {
        return Response::error(message, 500);
    }
    let conn = ConnId(0);
    refusal(&[
        Output::Send {
            conn,
            text: ServerMessage::Error(message).encode(),
        },
        Output::Close {
            conn,
            code: CloseCode::InternalError,
        },
    ])
}
