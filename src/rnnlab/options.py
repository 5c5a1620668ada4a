"""Choices shared by the command line and the code, kept free of heavy imports (no torch here),
so that ``rnnlab --help`` stays instant."""

RECURRENT_CELLS = ("rnn", "lstm", "gru")
CELLS = ("tutorial",) + RECURRENT_CELLS
BACKENDS = ("scratch", "torch")
POOLS = ("last", "max", "mean")
NONLINEARITIES = ("tanh", "relu", "sigmoid")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda")

# task name -> (module, config class, task class, predictor class)
TASKS = {"names": ("rnnlab.tasks.names", "NamesConfig", "NamesTask", "NamesPredictor")}
