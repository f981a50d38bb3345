import warnings, pytest, torch
from torchvision.models import resnet34

@pytest.fixture(scope='session')
def r34():
    torch.manual_seed(0)
    return resnet34(weights=None).double().eval()   # float64: the cross-checks hold to 1e-9 on any CPU

@pytest.fixture(scope='session')
def xb():
    torch.manual_seed(1)
    return torch.randn(3, 3, 128, 128, dtype=torch.float64)
