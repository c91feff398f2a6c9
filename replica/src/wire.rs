//! The window in Redis: keys, and the typed values the origin's mirror writes and the edge's
//! replay reads. Nothing else writes or parses them.
//!
//! Every key of a stream shares the `{s:NAME}` hash tag, so it lives in one hash slot and
//! Redis Cluster can run a stream's pipelines and `MULTI`s:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `estuary:streams` | set | names of mirrored streams |
//! | `{s:NAME}:meta` | string, JSON [`Meta`] | session, start time, window config, tracks |
//! | `{s:NAME}:init:{track}` | string | the track's CMAF init segment |
//! | `{s:NAME}:events` | stream of [`Event`]s | every part (fields + bytes), segment completions, the end, in order |
//!
//! Times travel as integers (nanoseconds), so an edge's window holds the very durations and
//! start time the origin's does and renders the same playlists byte for byte. A value that
//! does not parse is refused with a [`WireError`], never trusted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use media::{CodecConfig, Timescale, TrackInfo};
use packager::window::{PartIn, StreamWindow, WindowConfig};
use serde::{Deserialize, Serialize};

/// The set of mirrored stream names.
pub const STREAMS: &str = "estuary:streams";

pub fn meta_key(name: &str) -> String {
    format!("{{s:{name}}}:meta")
}

pub fn init_key(name: &str, track: usize) -> String {
    format!("{{s:{name}}}:init:{track}")
}

pub fn events_key(name: &str) -> String {
    format!("{{s:{name}}}:events")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    #[error("field {0:?} is not what it should be")]
    Bad(&'static str),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("meta: {0}")]
    Meta(String),
}

/// Limits a meta must keep (see [`Meta::from_json`]).
pub const MAX_SEGMENTS: usize = 1_000_000;
pub const MAX_SEGMENT_TARGET: Duration = Duration::from_secs(60);
const LATEST_START_SECS: u64 = 64_000_000_000;

/// `{s:NAME}:meta`: what an edge needs to open its copy of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The publish session (part of every media URL).
    pub session: String,
    /// When the window started, since the Unix epoch.
    pub started: Duration,
    pub segments: usize,
    pub segment_target: Duration,
    pub part_target: Duration,
    pub tracks: Vec<TrackMeta>,
    /// Viewers need a signed playback token (absent from older origins: public).
    #[serde(default)]
    pub signed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
    Av1,
    Vp9,
    Aac,
    Opus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackMeta {
    pub rendition: String,
    pub codec: Codec,
    /// The configuration record, hex (Opus: channels, pre-skip, input rate, big-endian).
    pub config: String,
    pub timescale: u32,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u16,
    pub bitrate_hint: Option<u32>,
    pub frame_rate_hint: Option<f64>,
}

impl Meta {
    /// The meta of `w` as it is now.
    pub fn of(w: &StreamWindow) -> Meta {
        let tracks = w.read(|st| {
            st.tracks
                .iter()
                .map(|t| TrackMeta::of(&t.info, &t.rendition))
                .collect()
        });
        Meta {
            session: w.session.clone(),
            started: w.started.duration_since(UNIX_EPOCH).unwrap_or_default(),
            segments: w.config.segments,
            segment_target: w.config.segment_target,
            part_target: w.config.part_target,
            tracks,
            signed: w.config.signed,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Meta always serializes")
    }

    /// The meta in `text`, if it is one a window can be made from: a window of 1 to
    /// [`MAX_SEGMENTS`] segments, targets an origin could have (a segment target up to a
    /// minute, parts no longer), a start time this side of the year 4000.
    pub fn from_json(text: &str) -> Result<Meta, WireError> {
        let meta: Meta = serde_json::from_str(text).map_err(|e| WireError::Meta(e.to_string()))?;
        if !(1..=MAX_SEGMENTS).contains(&meta.segments) {
            return Err(WireError::Meta(format!("{} segments", meta.segments)));
        }
        if meta.segment_target.is_zero()
            || meta.segment_target > MAX_SEGMENT_TARGET
            || meta.part_target.is_zero()
            || meta.part_target > meta.segment_target
        {
            return Err(WireError::Meta("unusable segment or part target".into()));
        }
        if meta.started.as_secs() > LATEST_START_SECS {
            return Err(WireError::Meta("a start time in the far future".into()));
        }
        Ok(meta)
    }

    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            segments: self.segments,
            segment_target: self.segment_target,
            part_target: self.part_target,
            signed: self.signed,
        }
    }

    pub fn started_at(&self) -> SystemTime {
        UNIX_EPOCH.checked_add(self.started).unwrap_or(UNIX_EPOCH)
    }
}

impl TrackMeta {
    pub fn of(t: &TrackInfo, rendition: &str) -> TrackMeta {
        let (codec, data): (Codec, Vec<u8>) = match &t.codec {
            CodecConfig::H264 { avcc } => (Codec::H264, avcc.to_vec()),
            CodecConfig::H265 { hvcc } => (Codec::H265, hvcc.to_vec()),
            CodecConfig::Av1 { av1c } => (Codec::Av1, av1c.to_vec()),
            CodecConfig::Vp9 { vpcc } => (Codec::Vp9, vpcc.to_vec()),
            CodecConfig::Aac { asc } => (Codec::Aac, asc.to_vec()),
            CodecConfig::Opus {
                channels,
                pre_skip,
                input_sample_rate,
            } => {
                let mut d = vec![*channels];
                d.extend_from_slice(&pre_skip.to_be_bytes());
                d.extend_from_slice(&input_sample_rate.to_be_bytes());
                (Codec::Opus, d)
            }
        };
        TrackMeta {
            rendition: rendition.to_string(),
            codec,
            config: hex(&data),
            timescale: t.timescale.0,
            width: t.width,
            height: t.height,
            sample_rate: t.sample_rate,
            channels: t.channels,
            bitrate_hint: t.bitrate_hint,
            frame_rate_hint: t.frame_rate_hint,
        }
    }

    pub fn track_info(&self) -> Result<TrackInfo, WireError> {
        let data = unhex(&self.config).ok_or(WireError::Bad("config"))?;
        if self.timescale == 0 {
            return Err(WireError::Bad("timescale"));
        }
        let b = Bytes::from(data.clone());
        let codec = match self.codec {
            Codec::H264 => CodecConfig::H264 { avcc: b },
            Codec::H265 => CodecConfig::H265 { hvcc: b },
            Codec::Av1 => CodecConfig::Av1 { av1c: b },
            Codec::Vp9 => CodecConfig::Vp9 { vpcc: b },
            Codec::Aac => CodecConfig::Aac { asc: b },
            Codec::Opus => match data[..] {
                [channels, s0, s1, r0, r1, r2, r3] => CodecConfig::Opus {
                    channels,
                    pre_skip: u16::from_be_bytes([s0, s1]),
                    input_sample_rate: u32::from_be_bytes([r0, r1, r2, r3]),
                },
                _ => return Err(WireError::Bad("config")),
            },
        };
        Ok(TrackInfo {
            codec,
            timescale: Timescale(self.timescale),
            width: self.width,
            height: self.height,
            sample_rate: self.sample_rate,
            channels: self.channels,
            bitrate_hint: self.bitrate_hint,
            frame_rate_hint: self.frame_rate_hint.filter(|f| f.is_finite() && *f > 0.0),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One entry of `{s:NAME}:events`, in the order the window saw them.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A part with its bytes (`last_in_segment` is not sent: a `Complete` follows instead).
    Part(PartIn),
    /// Segment `msn` of `track` is complete; the target duration once fixed.
    Complete {
        track: usize,
        msn: u64,
        target_duration: Option<u64>,
    },
    /// The stream ended.
    End,
}

impl Event {
    /// Appends the entry's fields to an `XADD` command. A part's bytes go into the command's
    /// buffer straight from the window.
    pub fn write_args(&self, xadd: &mut redis::Cmd) {
        match self {
            Event::Part(p) => {
                xadd.arg("type").arg("part");
                xadd.arg("track").arg(p.track).arg("msn").arg(p.msn);
                xadd.arg("index").arg(p.index);
                xadd.arg("duration_ns").arg(nanos(p.duration));
                xadd.arg("start_ns").arg(nanos(p.start));
                xadd.arg("independent").arg(p.independent as u8);
                xadd.arg("gap").arg(p.gap as u8);
                xadd.arg("end_expected").arg(p.end_expected as u8);
                xadd.arg("discontinuity").arg(p.discontinuity as u8);
                xadd.arg("samples").arg(p.samples);
                if let Some(td) = p.target_duration {
                    xadd.arg("td").arg(td);
                }
                if let Some(a) = p.announced {
                    xadd.arg("announced_ns").arg(nanos(a));
                }
                if let Some((msn, start)) = p.period {
                    xadd.arg("period_msn").arg(msn);
                    xadd.arg("period_start_ns").arg(nanos(start));
                }
                if !p.wall_offset.is_zero() {
                    xadd.arg("wall_offset_ns").arg(nanos(p.wall_offset));
                }
                xadd.arg("data").arg(p.data.as_ref());
            }
            Event::Complete {
                track,
                msn,
                target_duration,
            } => {
                xadd.arg("type").arg("complete");
                xadd.arg("track").arg(*track).arg("msn").arg(*msn);
                if let Some(td) = target_duration {
                    xadd.arg("td").arg(*td);
                }
            }
            Event::End => {
                xadd.arg("type").arg("end");
            }
        }
    }

    /// The event in an entry's fields. A part's bytes are taken out of the map, not copied.
    pub fn from_fields(fields: &mut HashMap<String, redis::Value>) -> Result<Event, WireError> {
        let data = match fields.remove("data") {
            Some(redis::Value::BulkString(b)) => Some(Bytes::from(b)),
            _ => None,
        };
        let f = Fields(fields);
        match f.text("type")? {
            "part" => Ok(Event::Part(PartIn {
                track: f.num("track")?,
                msn: f.num("msn")?,
                index: f.num("index")?,
                data: data.ok_or(WireError::Missing("data"))?,
                duration: Duration::from_nanos(f.num("duration_ns")?),
                independent: f.flag("independent")?,
                gap: f.flag("gap")?,
                last_in_segment: false,
                end_expected: f.flag("end_expected")?,
                discontinuity: f.flag("discontinuity")?,
                start: Duration::from_nanos(f.num("start_ns")?),
                samples: f.num("samples")?,
                target_duration: f.target_duration()?,
                announced: f.optional("announced_ns")?.map(Duration::from_nanos),
                period: match (f.optional("period_msn")?, f.optional("period_start_ns")?) {
                    (Some(msn), Some(start)) => Some((msn, Duration::from_nanos(start))),
                    _ => None,
                },
                wall_offset: Duration::from_nanos(f.optional("wall_offset_ns")?.unwrap_or(0)),
            })),
            "complete" => Ok(Event::Complete {
                track: f.num("track")?,
                msn: f.num("msn")?,
                target_duration: f.target_duration()?,
            }),
            "end" => Ok(Event::End),
            other => Err(WireError::UnknownType(other.to_string())),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An entry's fields, read in place (a dozen small values per part: no copy of each).
struct Fields<'a>(&'a HashMap<String, redis::Value>);

impl Fields<'_> {
    fn text(&self, name: &'static str) -> Result<&str, WireError> {
        match self.0.get(name) {
            Some(redis::Value::BulkString(b)) => {
                std::str::from_utf8(b).map_err(|_| WireError::Bad(name))
            }
            Some(_) => Err(WireError::Bad(name)),
            None => Err(WireError::Missing(name)),
        }
    }

    fn num<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, WireError> {
        self.text(name)?.parse().map_err(|_| WireError::Bad(name))
    }

    /// `td`, if there: whole seconds an origin could have fixed (a segment target of up to
    /// [`MAX_SEGMENT_TARGET`], capped at ten of them).
    fn target_duration(&self) -> Result<Option<u64>, WireError> {
        let max = MAX_SEGMENT_TARGET.as_secs() * 10;
        match self.optional::<u64>("td")? {
            Some(td) if !(1..=max).contains(&td) => Err(WireError::Bad("td")),
            td => Ok(td),
        }
    }

    /// A number that may be absent (fields older origins do not write).
    fn optional<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, WireError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(_) => self.num(name).map(Some),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, WireError> {
        match self.text(name)? {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(WireError::Bad(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fields an `XADD` built by `write_args` would store, as `XREAD` gives them back.
    fn stored(e: &Event) -> HashMap<String, redis::Value> {
        let mut cmd = redis::cmd("XADD");
        e.write_args(&mut cmd);
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                redis::Arg::Cursor => vec![],
            })
            .collect();
        args[1..]
            .chunks(2)
            .map(|kv| {
                (
                    String::from_utf8(kv[0].clone()).unwrap(),
                    redis::Value::BulkString(kv[1].clone()),
                )
            })
            .collect()
    }

    fn part() -> impl Strategy<Value = PartIn> {
        (
            (0usize..8, any::<u64>(), any::<u32>()),
            proptest::collection::vec(any::<u8>(), 0..64),
            (any::<u64>(), any::<u64>(), any::<u32>()),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (
                proptest::option::of(1u64..=600),
                any::<Option<u64>>(),
                any::<Option<(u64, u64)>>(),
                any::<u32>(),
            ),
        )
            .prop_map(
                |(
                    (track, msn, index),
                    data,
                    (d, s, samples),
                    flags,
                    (td, announced, period, wall),
                )| {
                    PartIn {
                        track,
                        msn,
                        index,
                        data: Bytes::from(data),
                        duration: Duration::from_nanos(d),
                        independent: flags.0,
                        gap: flags.1,
                        last_in_segment: false,
                        end_expected: flags.2,
                        discontinuity: flags.3,
                        start: Duration::from_nanos(s),
                        samples,
                        target_duration: td,
                        announced: announced.map(Duration::from_nanos),
                        period: period.map(|(m, s)| (m, Duration::from_nanos(s))),
                        wall_offset: Duration::from_nanos(wall as u64),
                    }
                },
            )
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            part().prop_map(Event::Part),
            (0usize..8, any::<u64>(), proptest::option::of(1u64..=600)).prop_map(
                |(track, msn, target_duration)| Event::Complete {
                    track,
                    msn,
                    target_duration
                }
            ),
            Just(Event::End),
        ]
    }

    fn track() -> impl Strategy<Value = TrackInfo> {
        let codec = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| CodecConfig::H264 { avcc: b.into() }),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| CodecConfig::H265 { hvcc: b.into() }),
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| CodecConfig::Av1 { av1c: b.into() }),
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| CodecConfig::Vp9 { vpcc: b.into() }),
            proptest::collection::vec(any::<u8>(), 0..4)
                .prop_map(|b| CodecConfig::Aac { asc: b.into() }),
            (any::<u8>(), any::<u16>(), any::<u32>()).prop_map(|(c, p, r)| CodecConfig::Opus {
                channels: c,
                pre_skip: p,
                input_sample_rate: r
            }),
        ];
        (
            codec,
            1u32..,
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(1.0f64..240.0),
        )
            .prop_map(
                |(codec, timescale, (width, height, sample_rate, channels), bitrate, fps)| {
                    TrackInfo {
                        codec,
                        timescale: Timescale(timescale),
                        width,
                        height,
                        sample_rate,
                        channels,
                        bitrate_hint: bitrate,
                        frame_rate_hint: fps,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn events_round_trip(e in event()) {
            prop_assert_eq!(Event::from_fields(&mut stored(&e)), Ok(e));
        }

        #[test]
        fn meta_round_trips(
            tracks in proptest::collection::vec(track(), 1..4),
            started in any::<u64>(),
            segments in 1usize..100,
            targets in (1u64..60_000_000_000).prop_flat_map(|s| (Just(s), 1..=s)),
            signed in any::<bool>(),
        ) {
            let meta = Meta {
                session: "abc".into(),
                started: Duration::from_nanos(started),
                segments,
                segment_target: Duration::from_nanos(targets.0),
                part_target: Duration::from_nanos(targets.1),
                tracks: tracks.iter().enumerate().map(|(i, t)| TrackMeta::of(t, &format!("r{i}"))).collect(),
                signed,
            };
            let back = Meta::from_json(&meta.to_json()).unwrap();
            prop_assert_eq!(&back, &meta);
            for (m, t) in back.tracks.iter().zip(&tracks) {
                prop_assert_eq!(&m.track_info().unwrap(), t);
            }
        }
    }

    #[test]
    fn what_does_not_parse_is_refused() {
        let mut f = stored(&Event::Complete {
            track: 1,
            msn: 2,
            target_duration: Some(2),
        });
        f.insert("msn".into(), redis::Value::BulkString(b"-1".to_vec()));
        assert_eq!(Event::from_fields(&mut f), Err(WireError::Bad("msn")));
        f.insert("msn".into(), redis::Value::BulkString(b"2".to_vec()));
        f.insert("td".into(), redis::Value::BulkString(b"two".to_vec()));
        assert_eq!(Event::from_fields(&mut f), Err(WireError::Bad("td")));
        // A target no origin could have fixed (it would overflow what is computed from it).
        f.insert(
            "td".into(),
            redis::Value::BulkString(u64::MAX.to_string().into_bytes()),
        );
        assert_eq!(Event::from_fields(&mut f), Err(WireError::Bad("td")));
        let mut f = stored(&Event::End);
        f.insert("type".into(), redis::Value::BulkString(b"dance".to_vec()));
        assert!(matches!(
            Event::from_fields(&mut f),
            Err(WireError::UnknownType(_))
        ));
        let mut part = stored(&Event::Part(PartIn {
            track: 0,
            msn: 0,
            index: 0,
            data: Bytes::new(),
            duration: Duration::ZERO,
            independent: true,
            gap: false,
            last_in_segment: false,
            end_expected: false,
            discontinuity: false,
            start: Duration::ZERO,
            samples: 0,
            target_duration: None,
            announced: None,
            period: None,
            wall_offset: Duration::ZERO,
        }));
        part.insert(
            "duration_ns".into(),
            redis::Value::BulkString(b"inf".to_vec()),
        );
        assert_eq!(
            Event::from_fields(&mut part),
            Err(WireError::Bad("duration_ns"))
        );
        assert!(Meta::from_json("{\"session\": 1}").is_err());
        let zero = Meta {
            session: "s".into(),
            started: Duration::ZERO,
            segments: 0,
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(334),
            tracks: vec![],
            signed: false,
        };
        assert!(Meta::from_json(&zero.to_json()).is_err(), "no segments");
        let far = Meta {
            segments: 10,
            started: Duration::from_secs(u64::MAX),
            ..zero.clone()
        };
        assert!(Meta::from_json(&far.to_json()).is_err(), "the far future");
        let slow = Meta {
            segments: 10,
            segment_target: Duration::from_secs(3600),
            ..zero
        };
        assert!(
            Meta::from_json(&slow.to_json()).is_err(),
            "an hour per segment"
        );
    }
}
