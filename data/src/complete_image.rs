//! Whether an image file holds all of its data. Decoders are lenient: a JPEG cut short decodes
//! with its missing rows filled in, so a truncated download would be trained on and evaluated
//! as if whole. These checks walk each format's own structure to its end marker.

use image::ImageFormat;

/// `Ok` when `bytes` reach the end of the image `format` says they hold; otherwise why not
/// ("truncated: …"). Formats without a cheap structural check pass.
pub fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), String> {
    let complete = match format {
        ImageFormat::Jpeg => jpeg_reaches_end(bytes),
        ImageFormat::Png => png_has_end(bytes),
        ImageFormat::Gif => bytes.last() == Some(&0x3B),
        ImageFormat::WebP => riff_is_whole(bytes),
        _ => true,
    };
    if complete {
        Ok(())
    } else {
        Err(format!(
            "truncated: the {} data ends before the image does",
            format.to_mime_type()
        ))
    }
}

/// Walks the JPEG marker segments and entropy-coded scans to the end-of-image marker.
fn jpeg_reaches_end(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        while i < b.len() && b[i] == 0xFF {
            i += 1; // fill bytes before a marker
        }
        let Some(&marker) = b.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0xD0..=0xD7 | 0x01 => continue, // markers without a length
            _ => {
                let Some(len) = b.get(i..i + 2) else {
                    return false;
                };
                i += u16::from_be_bytes([len[0], len[1]]) as usize;
                if i > b.len() {
                    return false;
                }
                if marker == 0xDA {
                    i = match scan_end(b, i) {
                        Some(end) => end,
                        None => return false,
                    };
                }
            }
        }
    }
}

/// The position of the first marker after entropy-coded data starting at `i` (a 0xFF followed
/// by neither a stuffed 0x00 nor a restart marker).
fn scan_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i + 1 < b.len() {
        if b[i] == 0xFF && b[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&b[i + 1]) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A PNG ends with its IEND chunk (trailing bytes after it are tolerated).
fn png_has_end(b: &[u8]) -> bool {
    b.windows(4).rev().take(64 * 1024).any(|w| w == b"IEND")
}

/// A RIFF (WebP) file is at least as long as its header says.
fn riff_is_whole(b: &[u8]) -> bool {
    match b.get(4..8) {
        Some(n) => b.len() as u64 >= 8 + u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as u64,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn whole_images_pass_and_cut_ones_are_truncated() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Bmp,
        ] {
            let bytes = encoded(format);
            assert_eq!(check_complete(&bytes, format), Ok(()), "{format:?}");
            let mut padded = bytes.clone();
            padded.extend_from_slice(&[0, 0, 0]);
            if format != ImageFormat::Gif {
                assert_eq!(
                    check_complete(&padded, format),
                    Ok(()),
                    "{format:?} + padding"
                );
            }
            if format == ImageFormat::Bmp {
                continue;
            }
            let cut = &bytes[..bytes.len() * 2 / 3];
            let err = check_complete(cut, format).unwrap_err();
            assert!(err.starts_with("truncated"), "{format:?}: {err}");
        }
    }
}
