"""Planning an experiment from a raw folder: its fingerprint (what the data are), the rules that
turn a fingerprint into settings (each with its reason), and the measured speed of this machine."""
