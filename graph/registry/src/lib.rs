//! Placeholder: written by the registry helper.
