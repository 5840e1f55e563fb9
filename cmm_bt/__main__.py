from cmm_bt.cli import main

main()
