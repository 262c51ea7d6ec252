"""What training needs besides the model: Keras callbacks, resume state, tf.distribute."""

from flexseg import tfenv

tfenv.prepare()  # before any module here imports TensorFlow
