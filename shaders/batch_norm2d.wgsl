// TODO: kernel not written yet.
