"Everything a notebook needs: fastai's vision API and fastcam's public names, as `from fastcam.all import *`"
from fastai.vision.all import *
from .hooks import *
from .trace import *
from .methods import *
from .passes import *
from .cam import *
from .vis import *
from .data import *
from .learner import *
from .callback import *
from .metrics import *
from .uses import *
from .attention import *
from .explain import *
from .files import *
from .pages import *
from .interpret import *
