"""The experiments shipped with flexseg: package data (flexseg.experiments) read by flexseg.resources."""
