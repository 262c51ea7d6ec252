"""The commands: one module per `flexseg` command, each with one public function that takes the
validated experiment (or its explicit inputs) and returns a typed result. They use the library
modules below them (data/, model/, training/, scoring, runs, ...); none of those imports a command."""

from flexseg import tfenv

tfenv.prepare()  # before any module here imports TensorFlow
