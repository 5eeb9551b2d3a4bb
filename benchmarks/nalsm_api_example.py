from astrosnn.data.images import load_images
from astrosnn.nalsm import NALSM

train, val, test = (load_images("digits", s) for s in ("train", "validation", "test"))
model = NALSM.from_preset("nalsm-digits")                      # 10x10x10 liquid, astrocyte-modulated STDP
model.fit(train.images, train.labels, val.images, val.labels)  # phase 1 + liquid features + readout
print("test accuracy", model.score(test.images, test.labels))
print("branching factor", round(model.branching_factor(test.images)[0], 3))  # paper's estimator, 20 samples
model.save("runs/nalsm-api")                                   # safetensors + JSON, no pickle
print(NALSM.load("runs/nalsm-api").transform(test.images[:5]).shape)  # liquid features: spike counts
