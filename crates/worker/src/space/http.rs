//! The object's answers to the plain HTTP requests the Worker let through
//! (section 14): the roster, a server broadcast, a kick; each a core call
//! whose step is carried out like a socket's.

use longhouse_core::api::{
    kick, parse_broadcast, removed_json, request_space, ApiError, KickTarget,
};
use longhouse_core::roster_json;
use worker::{Method, Request, Response, Result};

use super::Inner;
use crate::{api, now};

impl Inner {
    /// A plain HTTP request the Worker let through (section 14): the
    /// roster for a `GET` (after a sweep, so that no lease already run out
    /// is listed), a server broadcast for a `POST`, a kick for a `DELETE`.
    pub(super) async fn plain_http(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let space = match request_space(url.path()) {
            Ok(space) => space,
            Err(error) => return api::api_error(&error),
        };
        match req.method() {
            Method::Get => {
                let now = now();
                let step = {
                    let mut live = self.live()?;
                    self.sweeping(&mut live, now, |live| live.space.tick(now))
                };
                self.carry_out(space.as_str(), step).await?;
                let body = {
                    let live = self.live()?;
                    roster_json(
                        &space,
                        live.space.roster().leases().map(|l| l.client.clone()),
                    )
                };
                api::json(200, &body)
            }
            Method::Post => {
                let max = self.live()?.space.config().max_message_bytes;
                let data = match parse_broadcast(&req.bytes().await?, max) {
                    Ok(data) => data,
                    Err(error) => return api::api_error(&error),
                };
                let now = now();
                let step = {
                    let mut live = self.live()?;
                    self.sweeping(&mut live, now, |live| live.space.server_broadcast(&data))
                };
                self.carry_out(space.as_str(), step).await?;
                api::json(202, "{}")
            }
            Method::Delete => {
                let target = match KickTarget::parse(url.query()) {
                    Ok(target) => target,
                    Err(error) => return api::api_error(&error),
                };
                let now = now();
                let mut removed = 0;
                let step = {
                    let mut live = self.live()?;
                    self.sweeping(&mut live, now, |live| {
                        let (step, n) = kick(&mut live.space, &target, now);
                        removed = n;
                        step
                    })
                };
                self.carry_out(space.as_str(), step).await?;
                api::json(200, &removed_json(removed))
            }
            // The Worker routes no other method here.
            _ => api::api_error(&ApiError::NotFound),
        }
    }
}
