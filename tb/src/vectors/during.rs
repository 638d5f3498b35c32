//! The schema of concurrency (`during:`), memory timing (`timing:`) and driver bug switches
//! (`driver_bugs:`).

use std::fmt;

use iommu_model::driver::DriverQuirks;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess,
    Visitor,
};
use serde::Deserialize;

use super::*;

/// One kernel call with TLPs offered to the DUT while its invalidations execute:
/// `during: {unmap: {...}, tlps: [{...}, ...]}`.
#[derive(Clone, Debug)]
pub struct During {
    /// The call (any kernel or DMA API step).
    pub call: Box<Step>,
    /// Sent, in order, while the call's descriptor batches execute; those the batches did
    /// not leave time for are sent right after the call returns.
    pub tlps: Vec<Checked<Tlp>>,
}

impl Check for During {
    fn check(self) -> Result<Self, String> {
        if !self.call.kernel_call() {
            return Err(format!(
                "`during:` runs one kernel call (map, unmap, iotlb_sync, attach_device, \
                 dma_unmap_single, mm_unmap, sva_unbind, fpd, set_root_entry, mem_error, \
                 ...), not `{}`",
                self.call.keyword()
            ));
        }
        if self.tlps.is_empty() {
            return Err("`during:` needs `tlps: [...]` to send while the call executes".into());
        }
        Ok(self)
    }
}

impl<'de> Deserialize<'de> for During {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = During;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of one kernel call and `tlps:`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<During, A::Error> {
                let mut call: Option<Step> = None;
                let mut tlps = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "tlps" {
                        if tlps.is_some() {
                            return Err(de::Error::duplicate_field("tlps"));
                        }
                        tlps = Some(map.next_value::<Vec<Checked<Tlp>>>()?);
                    } else if let Some(c) = &call {
                        return Err(de::Error::custom(format!(
                            "`during:` runs one call: `{key}` after `{}`",
                            c.keyword()
                        )));
                    } else {
                        call = Some(map.next_value_seed(CallSeed(key))?);
                    }
                }
                Ok(During {
                    call: Box::new(call.ok_or_else(|| {
                        de::Error::custom("`during:` needs a kernel call, e.g. `unmap: {...}`")
                    })?),
                    tlps: tlps.ok_or_else(|| de::Error::missing_field("tlps"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads the value of the key `.0` as the [`Step`] of that keyword.
struct CallSeed(String);

impl<'de> DeserializeSeed<'de> for CallSeed {
    type Value = Step;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Step, D::Error> {
        Step::deserialize(Keyed {
            key: self.0,
            value: d,
        })
    }
}

/// An externally tagged enum whose tag was already read: `key` and the value's
/// deserializer.
struct Keyed<D> {
    key: String,
    value: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Keyed<D> {
    type Error = D::Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        v.visit_enum(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> EnumAccess<'de> for Keyed<D> {
    type Error = D::Error;
    type Variant = Value<D>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Value<D>), D::Error> {
        let k: de::value::StringDeserializer<D::Error> = self.key.into_deserializer();
        Ok((seed.deserialize(k)?, Value(self.value)))
    }
}

struct Value<D>(D);

impl<'de, D: Deserializer<'de>> VariantAccess<'de> for Value<D> {
    type Error = D::Error;
    fn unit_variant(self) -> Result<(), D::Error> {
        de::IgnoredAny::deserialize(self.0).map(|_| ())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, D::Error> {
        seed.deserialize(self.0)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("step", fields, v)
    }
}

/// Memory timing and TLP-port back-pressure of the run (what a regression seed draws).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Memory response latency, cycles (default 1..1).
    #[serde(default)]
    pub min_latency: Option<Num>,
    #[serde(default)]
    pub max_latency: Option<Num>,
    /// Percentage of cycles the memory port accepts a request (default 100).
    #[serde(default)]
    pub mem_ready_pct: Option<Num>,
    /// Memory responses in acceptance order (default false: in any order).
    #[serde(default)]
    pub in_order: Option<bool>,
    /// Percentage of idle cycles between TLPs the testbench sends (default 0).
    #[serde(default)]
    pub tlp_gap_pct: Option<Num>,
    /// Percentage of cycles the DUT's egress and completion ports are ready (default 100).
    #[serde(default)]
    pub tx_ready_pct: Option<Num>,
    #[serde(default)]
    pub cpl_ready_pct: Option<Num>,
}

impl Check for Timing {
    fn check(self) -> Result<Self, String> {
        let min = self.min_latency.map_or(1, |n| n.0);
        let max = self.max_latency.map_or(min, |n| n.0);
        if min == 0 || max < min || max > 1 << 16 {
            return Err(format!(
                "latency {min}..{max}: need 1 <= min_latency <= max_latency <= 65536"
            ));
        }
        for (k, v) in [
            ("mem_ready_pct", self.mem_ready_pct),
            ("tlp_gap_pct", self.tlp_gap_pct),
            ("tx_ready_pct", self.tx_ready_pct),
            ("cpl_ready_pct", self.cpl_ready_pct),
        ] {
            if v.is_some_and(|v| v.0 > 100) {
                return Err(format!("`{k}` is a percentage (0-100)"));
            }
        }
        if self.mem_ready_pct.is_some_and(|v| v.0 == 0)
            || self.tx_ready_pct.is_some_and(|v| v.0 == 0)
            || self.cpl_ready_pct.is_some_and(|v| v.0 == 0)
        {
            return Err("a ready percentage of 0 never accepts anything".into());
        }
        Ok(self)
    }
}

/// A driver bug switch by name (`skip-pasid-flush`, [`DriverQuirks::NAMES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverBug(pub String);

impl<'de> Deserialize<'de> for DriverBug {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            DriverQuirks::default().enable(&s)?;
            Ok(DriverBug(s))
        })
    }
}
