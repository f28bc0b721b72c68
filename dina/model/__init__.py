"""The native multimodal model (report Sec. 2.4-2.5): one decoder over every modality."""
