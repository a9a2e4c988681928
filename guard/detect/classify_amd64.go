package detect

func classifyWords(s string, word, odd []uint64) { classifyWordsGo(s, word, odd) }
