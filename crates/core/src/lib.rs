//! Longhouse core: placeholder, being written.
