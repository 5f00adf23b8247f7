"""Model zoo: reversible versions of the papers' networks and families.

Every constructor takes ``num_classes``, ``input_shape`` and the reversal
settings of ``keras_reversible.ReversibleModel``, and returns a model ready to
``compile`` (``smoke_discriminator``: a plain ``keras.Model``). Some take
``weights``: a preset of pretrained weights shipped with the package
(``zoo.list_presets()``, ``zoo.pretrained``) or a ``.weights.h5`` path.

Example:

```python
import zoo
print(zoo.list_models())
model = zoo.get("racecar_mnist_cnn", depth=3)
```
"""

from zoo.cifar_resnet import reversible_cifar_resnet
from zoo.densenet import reversible_densenet40
from zoo.racecar import racecar_mi_net, racecar_mnist_cnn
from zoo.racecar_vgg import racecar_cifar_vgg
from zoo.registry import ModelInfo, SmallInput, get, info, list_models, list_presets
from zoo.resnet import reversible_resnet18
from zoo.rn import rn_baseline
from zoo.smoke import smoke_discriminator, smoke_generator
from zoo.vgg import reversible_vgg19
from zoo.vit import reversible_vit

__all__ = [
    "ModelInfo", "SmallInput", "get", "info", "list_models", "list_presets",
    "racecar_cifar_vgg", "racecar_mi_net", "racecar_mnist_cnn",
    "reversible_cifar_resnet", "reversible_densenet40", "reversible_resnet18", "reversible_vgg19",
    "reversible_vit",
    "rn_baseline", "smoke_discriminator", "smoke_generator",
]
