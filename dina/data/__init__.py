"""The built-in worlds of data: ShapesWorld (images) and SpeechWorld (speech)."""
