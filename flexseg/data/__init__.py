"""Data in and out: images, masks and DICOM (io), class colours, pairing, checks, the tf.data pipeline."""

from flexseg import tfenv

tfenv.prepare()  # before any module here imports TensorFlow
