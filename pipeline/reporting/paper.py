"""The paper's own figures (Perrett & Damen 2019, Tables 1-5, as read in docs/method.md), keyed by the
dataset names of `config/paper.yaml` (breakfast, 50salads, mpii). Accuracy %, (D1, D2)."""

PAPER_TABLE1 = {
    ("50salads", "mpii"): {
        "Single, None": (41.1, 38.3), "Joint, LSTM": (41.6, 39.0), "Joint, BNLSTM": (32.4, 22.6),
        "D1,D2, LSTM": (4.4, 38.7), "D2,D1, LSTM": (43.0, 0.0), "Joint, DDLSTM": (47.1, 41.5),
    },
    ("breakfast", "50salads"): {
        "Single, None": (24.5, 41.1), "Joint, LSTM": (24.7, 40.5), "Joint, BNLSTM": (18.4, 37.0),
        "D1,D2, LSTM": (0.0, 42.5), "D2,D1, LSTM": (25.4, 8.5), "Joint, DDLSTM": (29.1, 46.3),
    },
    ("breakfast", "mpii"): {
        "Single, None": (24.5, 38.3), "Joint, LSTM": (26.3, 38.8), "Joint, BNLSTM": (22.5, 30.9),
        "D1,D2, LSTM": (0.0, 39.1), "D2,D1, LSTM": (25.3, 1.0), "Joint, DDLSTM": (30.5, 40.1),
    },
}

PAPER_TABLE2 = {
    ("50salads", "mpii"): {1: (45.7, 41.3), 2: (46.6, 41.0), 3: (47.1, 41.5), 4: (46.1, 40.6), 5: (41.0, 40.3),
                           10: (39.7, 38.0)},
    ("breakfast", "50salads"): {1: (28.4, 45.0), 2: (29.0, 45.2), 3: (29.1, 46.3), 4: (28.6, 44.3), 5: (29.0, 46.0),
                                10: (25.5, 40.7)},
    ("breakfast", "mpii"): {1: (29.2, 40.8), 2: (29.9, 40.1), 3: (30.5, 40.1), 4: (30.5, 38.8), 5: (30.3, 38.4),
                            10: (28.1, 35.6)},
}

# Tables 3 (Breakfast) and 4 (50 Salads mid-level): the paper's own rows, by method and by what the
# dataset was read from ("features": public features, the paper's "w/f"; "videos": its fine-tuned CNN).
PAPER_COMPARISON = {
    "table3": {("DDLSTM", "features"): 23.8, ("DDLSTM", "videos"): 29.1,
               ("DDLSTM (look-ahead)", "features"): 26.4, ("DDLSTM (look-ahead)", "videos"): 32.6},
    "table4": {("LSTM", "features"): 57.6, ("DDLSTM", "features"): 59.1, ("DDLSTM (look-ahead)", "features"): 60.9},
}

# Published results the paper quotes beside its own in Tables 3 and 4: (method, mode, accuracy %).
PAPER_QUOTED = {
    "table3": [
        ("Kuehne et al. 2016 [22]", "offline multi-pass", 56.3),
        ("Richard et al. 2018 [35]", "offline multi-pass", 43.0),
        ("Richard et al. 2018 [35]", "online", 27.2),
        ("De Geest & Tuytelaars 2018 [7] (1 of 4 splits)", "online", 32.6),
        ("Perrett & Damen 2017 [32]", "online", 28.5),
    ],
    "table4": [
        ("Bi-LSTM (1 layer), Lea et al. 2017 [25]", "offline single-pass", 55.7),
        ("ED-TCN, Lea et al. 2017 [25]", "offline single-pass", 64.7),
    ],
}

# Table 5: 50 Salads (split 0) learnt from a larger dataset, (D1, D2) accuracy %.
PAPER_TABLE5 = {
    ("activitynet", "50salads"): {"Pt/ft, LSTM": (44.4, 42.1), "Joint, DDLSTM": (44.3, 42.2)},
    ("thumos", "50salads"): {"Pt/ft, LSTM": (65.9, 42.0), "Joint, DDLSTM": (66.1, 42.3)},
    ("epic", "50salads"): {"Pt/ft, LSTM": (31.5, 44.9), "Joint, DDLSTM": (33.1, 48.9)},
}
