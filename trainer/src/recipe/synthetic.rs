//! `[data.synthetic]`: the switch `enabled` plus the synthetic world's own settings, read
//! straight into `safeaware_data::synth::SynthConfig` so the recipe keys are its field names and
//! its defaults.
//!
//! Serde's `flatten` cannot be used to read it: it buffers the table, so an unknown key or a
//! wrong type would lose its line, and it does not combine with `deny_unknown_fields`. Instead
//! the table is handed to `SynthConfig`'s own derived reader with `enabled` taken out on the
//! way, so every error still comes from the TOML reader with the key's position.

use std::fmt;

use safeaware_data::synth::SynthConfig;
use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The key of the switch; every other key belongs to [`SynthConfig`].
const ENABLED: &str = "enabled";

/// `[data.synthetic]`: synthetic data, used instead of `data.train`/`data.val` when `enabled`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SyntheticSection {
    /// Use synthetic data instead of `data.train`/`data.val`.
    pub enabled: bool,
    /// The generator's settings (`seed`, `train`, `val`, `test`, `image_size`,
    /// `distractor_prob`, `wrap_prob`, `describe_only`; `describe_only` items are trained in the
    /// `vcr` style only).
    #[serde(flatten)]
    pub settings: SynthConfig,
}

impl<'de> Deserialize<'de> for SyntheticSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SectionVisitor)
    }
}

struct SectionVisitor;

impl<'de> Visitor<'de> for SectionVisitor {
    type Value = SyntheticSection;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the [data.synthetic] table")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SyntheticSection, A::Error> {
        let mut enabled = None;
        let settings = SynthConfig::deserialize(MapAccessDeserializer::new(WithoutEnabled {
            map,
            enabled: &mut enabled,
        }))?;
        Ok(SyntheticSection {
            enabled: enabled.unwrap_or_default(),
            settings,
        })
    }
}

/// The table's entries minus `enabled`, whose value is kept aside.
struct WithoutEnabled<'a, A> {
    map: A,
    enabled: &'a mut Option<bool>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutEnabled<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        mut seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            match self.map.next_key_seed(KeySeed(seed))? {
                None => return Ok(None),
                Some(Key::Setting(key)) => return Ok(Some(key)),
                Some(Key::Enabled(unused)) => {
                    *self.enabled = Some(self.map.next_value()?);
                    seed = unused;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A key read by [`KeySeed`]: one of `SynthConfig`'s (as its reader identified it), or
/// `enabled`, which hands the unused seed back for the next key.
enum Key<V, K> {
    Setting(V),
    Enabled(K),
}

/// Reads a key inside the TOML reader (so errors carry its position) and passes it on to
/// `SynthConfig`'s key reader unless it is `enabled`.
struct KeySeed<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<K> {
    type Value = Key<K::Value, K>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(deserializer)?;
        if key == ENABLED {
            return Ok(Key::Enabled(self.0));
        }
        let key: StringDeserializer<D::Error> = key.into_deserializer();
        self.0.deserialize(key).map(Key::Setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Data {
        synthetic: SyntheticSection,
    }

    #[test]
    fn reads_the_switch_and_the_settings_with_defaults() {
        let d: Data = toml::from_str("[synthetic]\ntrain = 5\nenabled = true\nseed = 3\n").unwrap();
        let expected = SynthConfig {
            train: 5,
            seed: 3,
            ..SynthConfig::default()
        };
        assert!(d.synthetic.enabled);
        assert_eq!(d.synthetic.settings, expected);
        let off: Data = toml::from_str("[synthetic]\n").unwrap();
        assert_eq!(off.synthetic, SyntheticSection::default());
    }

    #[test]
    fn writes_the_switch_first_and_reads_back_what_it_wrote() {
        let d: Data = toml::from_str("[synthetic]\nenabled = true\nval = 0\n").unwrap();
        let text = toml::to_string(&d).unwrap();
        assert!(
            text.starts_with("[synthetic]\nenabled = true\nseed = 0\ntrain = 2000\nval = 0\n"),
            "{text}"
        );
        assert_eq!(toml::from_str::<Data>(&text).unwrap(), d);
    }

    #[test]
    fn unknown_keys_and_wrong_types_keep_their_position() {
        for (text, line, what) in [
            (
                "[synthetic]\nenabled = true\ntrian = 5\n",
                3,
                "unknown field `trian`",
            ),
            ("[synthetic]\nseed = \"x\"\n", 2, "invalid type"),
            ("[synthetic]\n\nenabled = 1\n", 3, "invalid type"),
        ] {
            let err = toml::from_str::<Data>(text).unwrap_err();
            let start = err.span().expect("a position").start;
            assert_eq!(text[..start].matches('\n').count() + 1, line, "{err}");
            assert!(err.message().contains(what), "{err}");
        }
    }
}
