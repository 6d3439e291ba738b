"""The TensorFlow-free pieces of retina-unet, reusable without the model: configuration, data and photographs,
preprocessing, patches, metrics, files written atomically, reports and pictures. Importing any of them never
imports TensorFlow (tests/test_cli.py checks the scripts' --help)."""
