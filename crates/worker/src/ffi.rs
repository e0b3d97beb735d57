//! Runtime APIs that `worker` 0.8.7 does not bind.
//!
//! `DurableObjectState.getWebSocketAutoResponseTimestamp(ws)` is missing from
//! both `worker::State` and `worker_sys::DurableObjectState`, and
//! `WebSocket.send` is bound only for a Rust `&str` (converted to a new
//! JavaScript string on every call), so both are declared here on local
//! views of the same JavaScript objects and reached with
//! [`JsCast::unchecked_ref`].

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{js_sys, web_sys, State, WebSocket};

#[wasm_bindgen]
extern "C" {
    /// The `DurableObjectState` object, seen through the methods bound here.
    #[wasm_bindgen(extends = js_sys::Object)]
    type StateExt;

    /// `state.getWebSocketAutoResponseTimestamp(ws)`: when the runtime last
    /// answered `ws` with the auto-response, or `null` if it never has.
    #[wasm_bindgen(method, catch, js_name = getWebSocketAutoResponseTimestamp)]
    fn get_web_socket_auto_response_timestamp(
        this: &StateExt,
        ws: &web_sys::WebSocket,
    ) -> Result<Option<js_sys::Date>, JsValue>;

    /// A `WebSocket`, seen through the methods bound here.
    #[wasm_bindgen(extends = js_sys::Object)]
    type SocketExt;

    /// `ws.send(text)` with a string already on the JavaScript side.
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_js_string(this: &SocketExt, text: &js_sys::JsString) -> Result<(), JsValue>;
}

/// Sends `text`, a JavaScript string made once for all of a message's
/// recipients: a fan-out to N sockets then converts its text from Rust to
/// JavaScript once, not N times.
pub fn send_shared(ws: &WebSocket, text: &js_sys::JsString) -> Result<(), JsValue> {
    let socket: &web_sys::WebSocket = ws.as_ref();
    socket.unchecked_ref::<SocketExt>().send_js_string(text)
}

/// When the runtime last sent the auto-response to `ws`, in milliseconds since
/// the epoch; `None` if it never has (or the runtime lacks the method).
pub fn auto_response_timestamp_ms(state: &State, ws: &WebSocket) -> Option<i64> {
    let raw: &StateExt = state.as_raw().unchecked_ref();
    let date = raw
        .get_web_socket_auto_response_timestamp(ws.as_ref())
        .ok()??;
    let ms = date.get_time();
    // A JavaScript time value is an integral number of ms within ±8.64e15.
    #[allow(clippy::cast_possible_truncation)]
    ms.is_finite().then_some(ms as i64)
}
