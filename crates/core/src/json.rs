//! JSON values the server carries without reading them: a client's state,
//! its signed `info`, a broadcast's `data`. Each is checked once, on the
//! way in, and kept as its text, so it is rendered into every message by
//! copying, never re-encoded per recipient.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a text is not an acceptable JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("not valid JSON")]
    NotJson,
    /// JSON, but not an object (`null` included).
    #[error("not a JSON object")]
    NotObject,
}

/// One JSON value as text, cheap to clone and shared by every message that
/// carries it. Two values are equal when their texts are: objects made by
/// [`Json::object`] are compact, with their keys in one order, so equal
/// objects have equal texts.
#[derive(Clone)]
pub struct Json(Arc<RawValue>);

impl Json {
    /// A JSON object from its text, re-serialised compactly (what a state
    /// or an `info` claim is stored as).
    pub fn object(text: &str) -> Result<Self, JsonError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| JsonError::NotJson)?;
        Self::from_value(&value)
    }

    /// A JSON object from a parsed value, compactly.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, JsonError> {
        if !value.is_object() {
            return Err(JsonError::NotObject);
        }
        let raw = serde_json::value::to_raw_value(value).map_err(|_| JsonError::NotJson)?;
        Ok(Json(Arc::from(raw)))
    }

    /// Any JSON value, kept as it was sent (a broadcast's `data`).
    pub fn raw(raw: &RawValue) -> Self {
        Json(Arc::from(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether the text is empty (never, for a value that parsed).
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Json {}

impl Hash for Json {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    /// Read back as written (stored client records are ours, already
    /// compact); only their being objects is checked by the caller.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Json(Arc::from(raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_compact_and_keyed_in_one_order() {
        let a = Json::object(r#" { "b" : [1, 2], "a" : "é" } "#).unwrap();
        let b = Json::object(r#"{"a":"\u00e9","b":[1,2]}"#).unwrap();
        assert_eq!(a.as_str(), r#"{"a":"é","b":[1,2]}"#);
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), a.as_str());
    }

    #[test]
    fn only_objects_are_objects() {
        for (text, e) in [
            ("null", JsonError::NotObject),
            ("[]", JsonError::NotObject),
            ("1", JsonError::NotObject),
            (r#""x""#, JsonError::NotObject),
            ("{", JsonError::NotJson),
            ("", JsonError::NotJson),
        ] {
            assert_eq!(Json::object(text), Err(e), "{text}");
        }
    }

    #[test]
    fn raw_values_keep_their_text() {
        let raw: &RawValue = serde_json::from_str(r#"[1, 2]"#).unwrap();
        assert_eq!(Json::raw(raw).as_str(), "[1, 2]");
    }
}
