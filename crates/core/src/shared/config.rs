//! The timings and bounds of a shared space, defaulting to
//! [`crate::defaults`].

use crate::defaults::{
    DEFAULT_GAP_PATIENCE_MS, DEFAULT_MAX_FOREIGN_EVENTS, DEFAULT_MAX_HELD_EVENTS,
    DEFAULT_PLACEHOLDER_MS, DEFAULT_RETRY_MS, DEFAULT_SUBSCRIBE_WAIT_MS, DEFAULT_SWEEP_SPACING_MS,
};
use crate::space::SpaceConfig;

/// Everything a [`crate::shared::SharedSpace`] is tuned by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedConfig {
    /// The protocol settings (TTL, message size).
    pub space: SpaceConfig,
    /// See [`DEFAULT_GAP_PATIENCE_MS`].
    pub gap_patience_ms: u64,
    /// See [`DEFAULT_SWEEP_SPACING_MS`].
    pub sweep_spacing_ms: u64,
    /// See [`DEFAULT_RETRY_MS`].
    pub retry_ms: u64,
    /// See [`DEFAULT_SUBSCRIBE_WAIT_MS`].
    pub subscribe_wait_ms: u64,
    /// See [`DEFAULT_PLACEHOLDER_MS`].
    pub placeholder_ms: u64,
    /// See [`DEFAULT_MAX_HELD_EVENTS`].
    pub max_held_events: usize,
    /// See [`DEFAULT_MAX_FOREIGN_EVENTS`].
    pub max_foreign_events: usize,
}

impl SharedConfig {
    /// The defaults around `space`.
    pub fn new(space: SpaceConfig) -> Self {
        SharedConfig {
            space,
            gap_patience_ms: DEFAULT_GAP_PATIENCE_MS,
            sweep_spacing_ms: DEFAULT_SWEEP_SPACING_MS,
            retry_ms: DEFAULT_RETRY_MS,
            subscribe_wait_ms: DEFAULT_SUBSCRIBE_WAIT_MS,
            placeholder_ms: DEFAULT_PLACEHOLDER_MS,
            max_held_events: DEFAULT_MAX_HELD_EVENTS,
            max_foreign_events: DEFAULT_MAX_FOREIGN_EVENTS,
        }
    }
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig::new(SpaceConfig::default())
    }
}
