//! Images as `data:` URLs for chat APIs, with the MIME type taken from the bytes (release files
//! named `.png` may hold JPEG). PNG, JPEG, GIF and WebP go as they are; other formats are
//! re-encoded as PNG. Every image is decoded once so a corrupt file fails here, per item.
//! [`decode_image_data_url`] is the other way, for `safeaware serve`: the payload is decoded by
//! its bytes, so a file sent as it is decodes to the pixels a local model reads from it.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::{DynamicImage, ImageFormat};

use safeaware_data::complete_image::check_complete;
use safeaware_data::fileio::decode_image_bytes;

use super::SourceError;

/// Reads `path` and returns `data:<mime>;base64,<bytes>`.
pub fn image_data_url(path: &Path) -> Result<String, SourceError> {
    let fail = |message: String| SourceError::Image {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let (format, decoded) = decode_image_bytes(&bytes).map_err(fail)?;
    let (mime, payload) = match format {
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP => {
            (format.to_mime_type(), bytes)
        }
        _ => {
            let mut png = Vec::new();
            decoded
                .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .map_err(|e| fail(format!("cannot re-encode as PNG: {e}")))?;
            ("image/png", png)
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    Ok(format!("data:{mime};base64,{b64}"))
}

/// Decodes `data:<mime>;base64,<payload>` into an image, its format detected from the bytes
/// and checked as `eval` checks image files (a truncated JPEG/PNG/GIF/WebP is refused). An
/// image over `max_pixels` (width × height, read from its header) is refused before it is
/// decoded. The error says what is wrong with the URL or the image.
pub fn decode_image_data_url(url: &str, max_pixels: u64) -> Result<DynamicImage, String> {
    let rest = url
        .trim()
        .strip_prefix("data:")
        .ok_or("expected a data: URL (the server fetches nothing)")?;
    let (_, payload) = rest
        .split_once(";base64,")
        .ok_or("expected a base64 data: URL (data:<mime>;base64,<bytes>)")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("the data: URL is not valid base64: {e}"))?;
    let unreadable = |e: String| format!("the image does not decode: {e}");
    let format =
        image::guess_format(&bytes).map_err(|_| unreadable("unknown image format".into()))?;
    // A cut file is named as such before its header is read (the header may be what is cut).
    check_complete(&bytes, format).map_err(unreadable)?;
    let (width, height) = image::ImageReader::with_format(Cursor::new(&bytes), format)
        .into_dimensions()
        .map_err(|e| unreadable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(format!(
            "the image is {width}x{height} pixels, over this server's limit of {max_pixels} pixels"
        ));
    }
    decode_image_bytes(&bytes)
        .map(|(_, image)| image)
        .map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_image(dir: &Path, name: &str, format: ImageFormat) -> std::path::PathBuf {
        let img =
            image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 80, 9]));
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn decode_url(url: &str) -> (String, Vec<u8>) {
        let rest = url.strip_prefix("data:").unwrap();
        let (mime, b64) = rest.split_once(";base64,").unwrap();
        (
            mime.to_string(),
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
    }

    #[test]
    fn mime_comes_from_the_content_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg_named_png = write_image(dir.path(), "a.png", ImageFormat::Jpeg);
        let (mime, bytes) = decode_url(&image_data_url(&jpeg_named_png).unwrap());
        assert_eq!(mime, "image/jpeg");
        assert_eq!(bytes, std::fs::read(&jpeg_named_png).unwrap());
        let png = write_image(dir.path(), "b.jpg", ImageFormat::Png);
        assert_eq!(decode_url(&image_data_url(&png).unwrap()).0, "image/png");
    }

    #[test]
    fn a_data_url_decodes_to_the_pixels_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Bmp] {
            let path = write_image(dir.path(), "x.img", format);
            let url = image_data_url(&path).unwrap();
            let back = decode_image_data_url(&url, 1 << 20).unwrap();
            let file = safeaware_data::fileio::decode_image(&path).unwrap();
            assert_eq!(back.to_rgb8(), file.to_rgb8(), "{format:?}");
        }
        for bad in [
            "http://example.invalid/a.png",
            "data:image/png,raw",
            "data:image/png;base64,@@@",
            "data:image/png;base64,AAAA",
        ] {
            assert!(decode_image_data_url(bad, 1 << 20).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_data_url_image_is_checked_to_its_end_and_against_the_pixel_limit() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = write_image(dir.path(), "a.jpg", ImageFormat::Jpeg);
        let url = image_data_url(&jpeg).unwrap();
        let (mime, bytes) = decode_url(&url);
        // Cut in its data, and cut in its header (before the dimensions are read).
        for keep in [bytes.len() - 8, bytes.len() / 2, 40] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes[..keep]);
            let cut = format!("data:{mime};base64,{b64}");
            let err = decode_image_data_url(&cut, 1 << 20).unwrap_err();
            assert!(err.contains("truncated"), "{keep} bytes: {err}");
        }
        let err = decode_image_data_url(&url, 11).unwrap_err();
        assert!(
            err.contains("4x3 pixels") && err.contains("limit of 11"),
            "{err}"
        );
        assert!(decode_image_data_url(&url, 12).is_ok());
    }

    #[test]
    fn other_formats_become_png_and_bad_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let bmp = write_image(dir.path(), "c.bmp", ImageFormat::Bmp);
        let (mime, bytes) = decode_url(&image_data_url(&bmp).unwrap());
        assert_eq!(mime, "image/png");
        let back = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (4, 3));

        let garbage = dir.path().join("d.png");
        std::fs::write(&garbage, b"not an image at all").unwrap();
        assert!(matches!(
            image_data_url(&garbage),
            Err(SourceError::Image { .. })
        ));
        let mut truncated =
            std::fs::read(write_image(dir.path(), "e.png", ImageFormat::Png)).unwrap();
        truncated.truncate(truncated.len() / 2);
        std::fs::write(dir.path().join("f.png"), truncated).unwrap();
        assert!(image_data_url(&dir.path().join("f.png")).is_err());
        assert!(image_data_url(&dir.path().join("absent.png")).is_err());
    }
}
