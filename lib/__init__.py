"""Pure, reusable pieces of the retina-unet pipeline: I/O, preprocessing, patches, metrics, plots."""
