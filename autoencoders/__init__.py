"""The study's autoencoders built on minidl: architectures, models and a resumable trainer."""
