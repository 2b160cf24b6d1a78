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

/// Decodes `paths` (JPEG or PNG, by content) into one NCHW batch of 0–255 RGB values.
pub fn load_images(paths: &[PathBuf], prep: &ImagePrep) -> Result<Array, ExecError> {
    let r = prep.resolution;
    let mut data = Vec::with_capacity(paths.len() * 3 * r * r);
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
    let mut reader = ImageReader::open(path)
        .map_err(|reason| ExecError::Io {
            path: path.to_owned(),
            reason,
        })?
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
    limits.max_alloc = Some(1 << 30);
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
