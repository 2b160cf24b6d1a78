//! JPEG and PNG images to a raw-pixel batch, resized and cropped the way the model's family
//! evaluates ImageNet: the shorter side resized (bicubic) to `resize`, then a centered
//! `resolution × resolution` crop ([`ImagePrep::for_family`]). Pixels stay in 0–255; the
//! model's own normalization is applied by its [`crate::Feed`].

use std::path::{Path, PathBuf};

use image::{ImageReader, Limits, imageops::FilterType};

use crate::{Array, ExecError};

/// How images are brought to the model's input size.
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePrep {
    /// Side of the square crop fed to the model.
    pub resolution: usize,
    /// The side the shorter edge is resized to (≥ `resolution`).
    pub resize: usize,
    /// Whose evaluation this follows, for the description.
    pub convention: String,
}

/// torchvision's EfficientNet weights: `(crop, resize)` of each variant's transforms.
const TORCHVISION: [(usize, usize); 8] = [
    (224, 256),
    (240, 255),
    (288, 288),
    (300, 320),
    (380, 384),
    (456, 456),
    (528, 528),
    (600, 600),
];

impl ImagePrep {
    /// The evaluation transform of a naming scheme's family at `resolution`: torchvision's
    /// per-variant resize/crop; timm's `crop_pct` 0.875; the TensorFlow family (keras,
    /// tf-official, timm-tf, lukemelas) TF's center crop with 32 pixels of padding
    /// (`resize = resolution + 32`).
    pub fn for_family(naming: Option<&str>, resolution: usize) -> ImagePrep {
        let (resize, convention) = match naming {
            Some("torchvision") => match TORCHVISION.iter().find(|(c, _)| *c == resolution) {
                Some(&(_, r)) => (r, "torchvision's transforms"),
                None => (
                    (resolution as f64 / 0.875).floor() as usize,
                    "crop fraction 0.875",
                ),
            },
            Some("timm") => (
                (resolution as f64 / 0.875).floor() as usize,
                "timm's crop_pct 0.875",
            ),
            Some("keras" | "tf-official" | "timm-tf" | "lukemelas") => {
                (resolution + 32, "TensorFlow's center crop, padding 32")
            }
            _ => (
                (resolution as f64 / 0.875).floor() as usize,
                "crop fraction 0.875",
            ),
        };
        ImagePrep {
            resolution,
            resize: resize.max(resolution),
            convention: convention.to_owned(),
        }
    }

    /// One line for people: `resize shorter side to 256 (bicubic), center crop 224`.
    pub fn describe(&self) -> String {
        format!(
            "resize shorter side to {} (bicubic), center crop {} ({})",
            self.resize, self.resolution, self.convention
        )
    }
}

/// The largest ratio of an image's sides that is resized and cropped.
const MAX_ASPECT: u64 = 64;

/// The most bytes of pixels an image is decoded or resized to.
const MAX_PIXEL_BYTES: u64 = 1 << 30;

/// Decodes `paths` (JPEG or PNG, by content) into one NCHW batch of 0–255 RGB values.
pub fn load_images(paths: &[PathBuf], prep: &ImagePrep) -> Result<Array, ExecError> {
    let r = prep.resolution;
    let mut data = crate::zeroed(crate::numel(&[paths.len(), 3, r, r], "images")?, "images")?;
    data.clear();
    for path in paths {
        load_one(path, prep, &mut data)?;
    }
    Ok(Array {
        shape: vec![paths.len(), 3, r, r],
        data,
    })
}

fn load_one(path: &Path, prep: &ImagePrep, out: &mut Vec<f32>) -> Result<(), ExecError> {
    let err = |message: String| ExecError::Image {
        path: path.to_owned(),
        message,
    };
    // Regular files only, checked on the descriptor: a FIFO is never waited on.
    let file = effnet_io::open_regular(path).map_err(|reason| ExecError::Io {
        path: path.to_owned(),
        reason,
    })?;
    let mut reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        _ => return Err(err("not a JPEG or PNG image".into())),
    }
    // Decoding memory bounded: 2^14 pixels a side, 1 GiB of pixels at most.
    let mut limits = Limits::default();
    limits.max_image_width = Some(1 << 14);
    limits.max_image_height = Some(1 << 14);
    limits.max_alloc = Some(MAX_PIXEL_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| err(e.to_string()))?.to_rgb8();
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(err("empty image".into()));
    }
    let side = prep.resize as u64;
    let (nw, nh) = if w <= h {
        (side, (u64::from(h) * side / u64::from(w)).max(side))
    } else {
        ((u64::from(w) * side / u64::from(h)).max(side), side)
    };
    // The resized image is allocated whole: a 16384×1 PNG of a few bytes would become
    // 4 million × 256 pixels (3 GB). Its longer side is kept within 64 × the shorter one, so
    // it holds at most 16× the bytes of the model input it is cropped to.
    if nw.max(nh) > side.saturating_mul(MAX_ASPECT) {
        return Err(err(format!(
            "{w}×{h} pixels: sides in a ratio past {MAX_ASPECT}:1 are not cropped to a square"
        )));
    }
    // The resized image within the decoding limit too (a recorded resolution of 65,536
    // would resize every image to 17 GB).
    if nw.saturating_mul(nh).saturating_mul(3) > MAX_PIXEL_BYTES {
        return Err(err(format!(
            "resizing to {nw}×{nh} pixels would take more than {MAX_PIXEL_BYTES} bytes; \
             give a smaller --resolution"
        )));
    }
    let resized = image::imageops::resize(&image, nw as u32, nh as u32, FilterType::CatmullRom);
    let r = prep.resolution as u64;
    let (x0, y0) = ((nw - r) / 2, (nh - r) / 2);
    let r = prep.resolution;
    for c in 0..3 {
        for y in 0..r {
            for x in 0..r {
                let p = resized.get_pixel(x0 as u32 + x as u32, y0 as u32 + y as u32);
                out.push(f32::from(p[c]));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliver_is_refused_before_it_is_resized() {
        let dir = std::env::temp_dir().join(format!("effnet-exec-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, w: u32, h: u32| {
            let path = dir.join(name);
            image::RgbImage::new(w, h).save(&path).unwrap();
            path
        };
        let prep = ImagePrep::for_family(Some("timm"), 224);
        // 16384×1 resizes to 4,194,304×256 (3 GB) without the bound.
        let sliver = write("sliver.png", 1 << 14, 1);
        let e = load_images(&[sliver], &prep).unwrap_err().to_string();
        assert!(e.contains("16384×1 pixels") && e.contains("64:1"), "{e}");
        let tall = write("tall.png", 1, 65);
        assert!(load_images(&[tall], &prep).is_err());
        // 64:1 still runs.
        let wide = write("wide.png", 64, 1);
        let a = load_images(&[wide], &prep).unwrap();
        assert_eq!(a.shape, vec![1, 3, 224, 224]);
        assert_eq!(a.data.len(), 3 * 224 * 224);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
