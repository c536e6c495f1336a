//! Reads back an events file written by `TbWriter` with an independent TFRecord reader:
//! checks the framing and both masked CRC-32Cs of every record (CRC computed bit by bit here,
//! not with the crate the writer uses), decodes the `Event` protobufs, and finds the scalars.

use safeaware_trainer::tensorboard::TbWriter;
use std::fs;

/// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn masked(data: &[u8]) -> u32 {
    ((crc32c(data) >> 15) | (crc32c(data) << 17)).wrapping_add(0xa282_ead8)
}

/// Splits a TFRecord stream into records, verifying lengths and CRCs.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(
            len_crc,
            masked(len_bytes),
            "length CRC of record {}",
            out.len()
        );
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "data CRC of record {}", out.len());
        out.push(data.to_vec());
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "trailing bytes");
    out
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    v
}

/// Protobuf fields of a message: (field number, wire type, payload bytes).
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at);
        let (field, wire) = (key >> 3, key & 7);
        let payload = match wire {
            0 => varint(b, &mut at).to_le_bytes().to_vec(),
            1 => {
                at += 8;
                b[at - 8..at].to_vec()
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                at += n;
                b[at - n..at].to_vec()
            }
            5 => {
                at += 4;
                b[at - 4..at].to_vec()
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((field, wire, payload));
    }
    out
}

#[derive(Debug, Default)]
struct Event {
    wall_time: f64,
    step: u64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
}

fn decode_event(b: &[u8]) -> Event {
    let mut e = Event::default();
    for (field, wire, p) in fields(b) {
        match (field, wire) {
            (1, 1) => e.wall_time = f64::from_le_bytes(p.try_into().unwrap()),
            (2, 0) => e.step = u64::from_le_bytes(p.try_into().unwrap()),
            (3, 2) => e.file_version = Some(String::from_utf8(p).unwrap()),
            (5, 2) => {
                for (vf, _, value) in fields(&p) {
                    assert_eq!(vf, 1, "Summary.value");
                    let (mut tag, mut simple) = (String::new(), f32::NAN);
                    for (f, w, x) in fields(&value) {
                        match (f, w) {
                            (1, 2) => tag = String::from_utf8(x).unwrap(),
                            (2, 5) => simple = f32::from_le_bytes(x.try_into().unwrap()),
                            other => panic!("unexpected Summary.Value field {other:?}"),
                        }
                    }
                    e.scalars.push((tag, simple));
                }
            }
            other => panic!("unexpected Event field {other:?}"),
        }
    }
    e
}

#[test]
fn events_file_has_valid_records_and_the_scalars_written() {
    assert_eq!(
        crc32c(b"123456789"),
        0xe306_9283,
        "reference CRC of the test itself"
    );
    let run = tempfile::tempdir().unwrap();
    let mut tb = TbWriter::create(run.path()).unwrap();
    tb.add_scalar("train/loss", 2.5, 1).unwrap();
    tb.add_scalars(300, &[("train/loss", 1.25), ("train/lr", 1e-3)])
        .unwrap();
    tb.flush().unwrap();

    let files: Vec<_> = fs::read_dir(run.path().join("tb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0], tb.path());
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents."));

    let events: Vec<Event> = records(&fs::read(&files[0]).unwrap())
        .iter()
        .map(|r| decode_event(r))
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(
        events.iter().all(|e| e.wall_time > 1.6e9),
        "wall times are Unix seconds"
    );
    assert_eq!(events[1].step, 1);
    assert_eq!(events[1].scalars, [("train/loss".to_string(), 2.5)]);
    assert_eq!(events[2].step, 300);
    assert_eq!(
        events[2].scalars,
        [
            ("train/loss".to_string(), 1.25),
            ("train/lr".to_string(), 1e-3)
        ]
    );

    // A second writer (a resumed run) adds its own file instead of clobbering the first.
    drop(tb);
    let tb2 = TbWriter::create(run.path()).unwrap();
    assert_ne!(tb2.path(), files[0]);
    assert_eq!(fs::read_dir(run.path().join("tb")).unwrap().count(), 2);
}
