"""Choices shared by the command line and the code, kept free of heavy imports (no torch here),
so that ``rnnlab --help`` stays instant."""

from .nn.spec import NONLINEARITIES, RECURRENT_CELLS  # noqa: F401 (re-exported; the cell facts live with the cells)

CELLS = ("tutorial",) + RECURRENT_CELLS
BACKENDS = ("scratch", "torch")
POOLS = ("last", "max", "mean", "attention")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda")

# task name -> (module, config class, task class, predictor class)
TASKS = {"names": ("rnnlab.tasks.names", "NamesConfig", "NamesTask", "NamesPredictor"),
         "poems": ("rnnlab.tasks.poems", "PoemsConfig", "PoemsTask", "PoemsPredictor"),
         "sentiment": ("rnnlab.tasks.sentiment", "SentimentConfig", "SentimentTask", "SentimentPredictor")}
POEM_FORMS = ("5x4", "7x4", "5x8", "7x8", "free")
# What `rnnlab generate` samples with when no option says otherwise -- and so what the poems quality figures score.
DEFAULT_TEMPERATURE = 0.8
