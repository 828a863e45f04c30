from monet_opt.cli import run

run()
