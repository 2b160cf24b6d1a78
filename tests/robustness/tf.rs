//! Hostile TensorFlow checkpoints, state files and SavedModels.
