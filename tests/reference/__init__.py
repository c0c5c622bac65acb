"""Plain-torch references for each optimizer family, run side by side with lrfused: sgd.py
(torch.optim.SGD(foreach=False) + torch's schedulers); adamw.py (torch.optim.AdamW(foreach=False)) and
lion.py (a plain-torch Lion), both on moments.py's harness; common.py (the comparison loop). A new
family adds its module here and its entry in families.py."""
