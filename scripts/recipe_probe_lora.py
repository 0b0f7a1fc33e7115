"""recipe_probe with two extra (unvalidated) train keys: lora_layers=[a,b] (inclusive range), lora_targets=[...]"""
import sys, runpy
import superalign.learner.dpo as dpo

def add_lora(model, cfg):
    from peft import LoraConfig, get_peft_model
    lo, hi = getattr(cfg, "lora_lo", None), getattr(cfg, "lora_hi", None)
    layers = (lo, hi) if lo is not None else None
    t = getattr(cfg, "lora_targets", None)
    targets = {"attn": ["q_proj", "k_proj", "v_proj", "o_proj"], "mlp": ["gate_proj", "up_proj", "down_proj"]}.get(t, dpo.LORA_TARGETS)
    kw = {}
    if layers:
        kw["layers_to_transform"] = list(range(layers[0], layers[1] + 1))
        kw["layers_pattern"] = "layers"
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM", **kw)
    m = get_peft_model(model, lcfg)
    n = sum(p.numel() for p in m.parameters() if p.requires_grad)
    print(f"lora layers={layers} targets={targets} trainable={n}", flush=True)
    return m

dpo.add_lora = add_lora
sys.argv = ["recipe_probe.py"] + sys.argv[1:]
runpy.run_path("/work/main/scripts/recipe_probe.py", run_name="__main__")
