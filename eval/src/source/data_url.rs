//! Images as `data:` URLs for chat APIs, with the MIME type taken from the bytes (release files
//! named `.png` may hold JPEG). PNG, JPEG, GIF and WebP go as they are; other formats are
//! re-encoded as PNG. Every image is decoded once so a corrupt file fails here, per item.
//! [`decode_image_data_url`] is the other way, for `safeaware serve`: the payload is decoded by
//! its bytes, so a file sent as it is decodes to the pixels a local model reads from it.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::{DynamicImage, ImageFormat};

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

/// Decodes `data:<mime>;base64,<payload>` into an image, its format detected from the bytes.
/// The error says what is wrong with the URL or the image.
pub fn decode_image_data_url(url: &str) -> Result<DynamicImage, String> {
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
    image::load_from_memory(&bytes).map_err(|e| format!("the image does not decode: {e}"))
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
            let back = decode_image_data_url(&url).unwrap();
            let file = safeaware_data::fileio::decode_image(&path).unwrap();
            assert_eq!(back.to_rgb8(), file.to_rgb8(), "{format:?}");
        }
        assert!(decode_image_data_url("http://example.invalid/a.png").is_err());
        assert!(decode_image_data_url("data:image/png,raw").is_err());
        assert!(decode_image_data_url("data:image/png;base64,@@@").is_err());
        assert!(decode_image_data_url("data:image/png;base64,AAAA").is_err());
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
