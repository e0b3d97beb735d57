//! Longhouse edge target: placeholder.
