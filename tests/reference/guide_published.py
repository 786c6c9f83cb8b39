"""The published α-guided code, copied as the reference for tests/test_guide.py.

Only changes: ``.cuda()`` / ``.to("cuda:0")`` removed (CPU), ``print`` calls and file writes
removed, the functions made module-level where they were methods (``self`` kept as an explicit
namespace argument where the code reads attributes). Sources, with licences:

* ``Tempbalance`` — YefanZhou/TempBalance @ 9f0d9c7e86b70c6613ac3b44b5fd147873050823,
  ``tempbalance.py`` (MIT, Copyright (c) 2023 Yefan).
* ``mb_get_layer_temps`` — ZihangHLiu/ModelBalancing @ 9970cea5a7b7c7ddc65424f9a75ce6016954c3ae,
  ``transformers/src/transformers/utils/esd_utils.py`` ``get_layer_temps`` (the
  ``tb_layer_blocks`` / ``sigmoid`` / ``block`` branch; the file lives in the repository's fork
  of Hugging Face transformers, Apache-2.0).
* ``ap_net_esd_estimator``, ``ap_ww_sparsity_core``, ``ap_prune_magnitude_mask`` —
  haiquanlu/AlphaPruning @ 5f0e9845549ec8ee6dc395f1410566f26cc9e54e, ``lib/esd_utils.py``
  ``net_esd_estimator`` and ``lib/prune.py`` ``ww_sparsity`` (its arithmetic after the metric
  load), ``prune_magnitude`` / ``prune_wanda`` masking lines (MIT, Copyright (c) 2024
  haiquanluuuu).
* ``farms_*`` — HUST-AI-HYZ/FARMS @ 8e07c3fb0da6bb5f82ba932396fd284918aa565f,
  ``Image_Classification/sampling.py`` and ``tempbalance_farms.py``
  ``Tempbalance_FARMS.net_esd_estimator``/``analysis_esd`` (MIT, Copyright (c) 2023 Yefan).

AlphaDecay (hed-ucas/AlphaDecay, no licence file) is not copied: its ``tb_linear_map``
(``WeightDecayUnbalance.py`` ``get_layer_temps``) is the same ``np.interp`` line as
TempBalance's with ``wd`` for ``lr``, and the test recomputes it with ``Tempbalance.get_layer_temps``.
"""

# ruff: noqa
# fmt: off
import math
from operator import itemgetter
import re

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

class Tempbalance(object):
    def __init__(self, 
                    net, 
                    EVALS_THRESH=0.00001,
                    bins=100, 
                    conv_norm=0.5,
                    pl_fitting='median',
                    xmin_pos=2,
                    filter_zeros=False,
                    remove_first_layer=True,
                    remove_last_layer=True,
                    eigs_thresh=50,
                    esd_metric_for_tb='alpha',
                    assign_func='tb_linear_map',
                    lr_min_ratio=0.5,
                    lr_max_ratio=1.5,
                    batchnorm=True,
                    batchnorm_type='name',
                    layernorm=False
                    ):
        """init function
        Args:
            net (nn.module):             net to train
            EVALS_THRESH (float, ):      threshold to filter small eigenvalue. Defaults to 0.00001.
            bins (int, int):             ESD bins. Defaults to 100.
            conv_norm (float, ):         conv norm. Defaults to 0.5.
            pl_fitting (str, ):          powerlaw fitting method. Defaults to median, ['median', 'goodness-of-fit', 'fix-finger']
            xmin_pos (int, ):            set the position of minimum eigenvalue in the tail. Defaults to 2.
            filter_zeros (bool, ):       filter small eigenvalues or not. Defaults to False.
            remove_first_layer (bool, ): whether exclude first layer in TB. Defaults to True.
            remove_last_layer (bool, ): whether exclude last layer in TB. Defaults to True.
            esd_metric_for_tb (str, ): metric for TB scheduling. Defaults to 'alpha'.
            assign_func (str, ):         learning rate assignment function. Defaults to 'tb_linear_map'.
            lr_min_ratio (float, ):      learning rate lower bound. Defaults to 0.5.
            lr_max_ratio (float, ):       learning rate upper bound. Defaults to 1.5.
            batchnorm (bool, ):          whether adjust batch norm learning rate using TB. Defaults to True.
            batchnorm_type (str, ):      how to set learning rate for batchnorm layers
            layernorm (bool, ):          whether adjust layer norm learning rate using TB. Defaults to True.
        """
        self.net = net
        self.EVALS_THRESH = EVALS_THRESH
        self.bins = bins
        self.conv_norm = conv_norm
        self.pl_fitting = pl_fitting
        self.xmin_pos = xmin_pos
        self.filter_zeros = filter_zeros
        self.remove_first_layer = remove_first_layer
        self.remove_last_layer = remove_last_layer
        self.eigs_thresh = eigs_thresh
        self.esd_metric_for_tb = esd_metric_for_tb
        self.assign_func = assign_func
        self.lr_min_ratio = lr_min_ratio
        self.lr_max_ratio = lr_max_ratio
        self.batchnorm = batchnorm
        self.layernorm = layernorm
        self.bn_to_conv = {}
        self.ln_to_linear = {}
        
        if batchnorm and batchnorm_type == 'name':
            # let the batch norm layer change lr corresponding to the layer
            # with the same layer name 
            longname_lst = []
            for name, m in self.net.named_modules():
                if isinstance(m, nn.Conv2d) or isinstance(m, nn.Linear):
                    longname_lst.append(name)
            for name, module in self.net.named_modules():
                if isinstance(module, nn.BatchNorm2d) \
                        and name.replace('bn', 'conv') in longname_lst:
                    self.bn_to_conv[name] = name.replace('bn', 'conv')
                    
        elif batchnorm and batchnorm_type == 'order':
            # let the batch norm layer change lr corresponding to the 
            # conv layer before current layer
            longname_lst = []
            type_lst = []
            for name, module in self.net.named_modules():
                if isinstance(module, nn.Conv2d):
                    longname_lst.append(name)
                    type_lst.append('nn.Conv2d')
                if isinstance(module, nn.BatchNorm2d):
                    if type_lst[-1] == 'nn.Conv2d':
                        self.bn_to_conv[name] = longname_lst[-1]
                    longname_lst.append(name)
                    type_lst.append('nn.BatchNorm2d')
        
        if self.layernorm:
            longname_lst = []
            type_lst = []
            for name, module in self.net.named_modules():
                if isinstance(module, nn.Linear):
                    longname_lst.append(name)
                    type_lst.append('nn.Linear')
                if isinstance(module, nn.LayerNorm):
                    if type_lst[-1] == 'nn.Linear':
                        self.ln_to_linear[name] = longname_lst[-1]
                    longname_lst.append(name)
                    type_lst.append('nn.LayerNorm')
            
        
    def build_optimizer_param_group(self, untuned_lr=0.1, initialize=True):
        """build the parameter group for optimizer

        Args:
            untuned_lr (float, ): global learning rate that is not tuned. Defaults to 0.1.
            initialize (bool, ): if True, build a list of dictionary, if False, build a list of learning rate . Defaults to True.

        Returns:
            _type_: _description_
        """
        metrics = self.net_esd_estimator()
        layer_stats = pd.DataFrame({key:metrics[key] for key in metrics if key!='eigs'})
        
        if self.remove_first_layer:
            layer_stats = layer_stats.drop(labels=0, axis=0)
            # index must be reset otherwise may delete the wrong row 
            layer_stats.index = list(range(len(layer_stats[self.esd_metric_for_tb])))
        if self.remove_last_layer:
            layer_stats = layer_stats.drop(labels=len(layer_stats) - 1, axis=0)
            # index must be reset otherwise may delete the wrong row 
            layer_stats.index = list(range(len(layer_stats[self.esd_metric_for_tb])))
        
        # remove layers with number of eigs less than a threshold
        layer_stats = layer_stats[layer_stats['eigs_num'] >= self.eigs_thresh]
        layer_stats.index = list(range(len(layer_stats[self.esd_metric_for_tb])))
        
        metric_scores = np.array(layer_stats[self.esd_metric_for_tb])
        scheduled_lr = self.get_layer_temps(assign_func=self.assign_func, 
                                            metric_scores=metric_scores, 
                                            untuned_lr=untuned_lr)
        
        layer_stats['scheduled_lr'] = scheduled_lr
        layer_name_to_tune = list(layer_stats['longname'])
        opt_params_groups = []
        params_to_tune_ids = []
        layer_count = 0
        # these params should be tuned
        for name, module in self.net.named_modules():
            
            # these are the conv layers analyzed by ESD
            if name in layer_name_to_tune:
                params_to_tune_ids += list(map(id, module.parameters()))
                scheduled_lr = layer_stats[layer_stats['longname'] == name]['scheduled_lr'].item()
                if initialize:
                    # append a dictionary for initialize optimizer
                    opt_params_groups.append({'params': module.parameters(), 'lr': scheduled_lr})
                else:
                    # append tuned learning rate 
                    opt_params_groups.append(scheduled_lr)
                layer_count += 1
            # decide should we tune the batch norm accordingly
            elif self.batchnorm \
                and isinstance(module, nn.BatchNorm2d) \
                    and name in self.bn_to_conv \
                        and self.bn_to_conv[name] in layer_name_to_tune:
                
                params_to_tune_ids += list(map(id, module.parameters()))
                scheduled_lr = layer_stats[layer_stats['longname'] == self.bn_to_conv[name]]['scheduled_lr'].item()
                if initialize:
                    # append a dictionary for initialize optimizer
                    opt_params_groups.append({'params': module.parameters(), 'lr': scheduled_lr})
                else:
                    # append tuned learning rate 
                    opt_params_groups.append(scheduled_lr)
                layer_count += 1
            
            elif self.layernorm \
                and isinstance(module, nn.LayerNorm) \
                    and name in self.ln_to_linear \
                        and self.ln_to_linear[name] in layer_name_to_tune:
                
                params_to_tune_ids += list(map(id, module.parameters()))
                scheduled_lr = layer_stats[layer_stats['longname'] == self.ln_to_linear[name]]['scheduled_lr'].item()
                if initialize:
                    opt_params_groups.append({'params': module.parameters(), 'lr': scheduled_lr})
                else:
                    opt_params_groups.append(scheduled_lr)
                layer_count += 1
        
        if initialize:
            # those params are untuned
            untuned_params = \
                filter(lambda p: id(p) not in params_to_tune_ids, self.net.parameters())
            opt_params_groups.append({'params': untuned_params, 'lr': untuned_lr}) 
            return opt_params_groups, layer_count
        else:
            return opt_params_groups, layer_count
    
    def step(self, optimizer, untuned_lr):
        opt_params_groups, layer_count = \
            self.build_optimizer_param_group(untuned_lr=untuned_lr, initialize=False)
        for index, param_group in enumerate(optimizer.param_groups):
            if index <= layer_count - 1:
                param_group['lr'] = opt_params_groups[index]
            else:
                param_group['lr'] = untuned_lr
                
    def net_esd_estimator(
            self,
            verbose=False):
        """evaluate the ESD of the conv nets
        Args:
            verbose: 
        Returns:
            _type_: _description_
        """
        results = {
            'alphahat':[],
            'alpha':[],
            'spectral_norm': [],
            'D': [],
            'longname':[],
            'eigs':[],
            'norm':[],
            'eigs_num':[]
            }
        pass  # (verbose printing removed)
        # iterate through layers
        for name, m in self.net.named_modules():
            if isinstance(m, nn.Conv2d) or isinstance(m, nn.Linear):
                matrix = m.weight.data.clone()
                # normalization and tranpose Conv2d
                if isinstance(m, nn.Conv2d):
                    matrix = torch.flatten(matrix, start_dim=2) * math.sqrt(self.conv_norm)
                    matrix = matrix.transpose(1, 2).transpose(0, 1)
                eigs = torch.square(torch.linalg.svdvals(matrix).flatten())
                # ascending order 
                eigs, _ = torch.sort(eigs, descending=False)
                spectral_norm = eigs[-1].item()
                fnorm = torch.sum(eigs).item()
                
                if self.filter_zeros:
                    nz_eigs = eigs[eigs > self.EVALS_THRESH]
                    N = len(nz_eigs)
                    # somethines N may equal 0, if that happens, we don't filter eigs
                    if N == 0:
                        nz_eigs = eigs
                        N = len(nz_eigs)
                else:
                    nz_eigs = eigs
                    N = len(nz_eigs)

                log_nz_eigs  = torch.log(nz_eigs)

                if self.pl_fitting == 'median':
                    i = int(len(nz_eigs) / self.xmin_pos)    
                    xmin = nz_eigs[i]
                    n = float(N - i)
                    seq = torch.arange(n)
                    final_alpha = 1 + n / (torch.sum(log_nz_eigs[i:]) - n * log_nz_eigs[i])
                    final_D = torch.max(torch.abs(
                                1 - (nz_eigs[i:] / xmin) ** (-final_alpha + 1) - seq / n     
                            ))
                else:
                    alphas = torch.zeros(N-1)
                    Ds     = torch.ones(N-1)
                    if self.pl_fitting == 'fix-finger':
                        hist_nz_eigs = torch.log10(nz_eigs)
                        min_e, max_e = hist_nz_eigs.min(), hist_nz_eigs.max()
                        counts = torch.histc(hist_nz_eigs, self.bins, min=min_e, max=max_e)
                        boundaries = torch.linspace(min_e, max_e, self.bins + 1)
                        h = counts, boundaries
                        ih = torch.argmax(h[0])  # 
                        xmin2 = 10 ** h[1][ih]
                        xmin_min = torch.log10(0.95 * xmin2)
                        xmin_max = 1.5 * xmin2
                    
                    for i, xmin in enumerate(nz_eigs[:-1]):
                        if self.pl_fitting == 'fix-finger':
                            if xmin < xmin_min:
                                continue
                            if xmin > xmin_max:
                                break

                        n = float(N - i)
                        seq = torch.arange(n)
                        alpha = 1 + n / (torch.sum(log_nz_eigs[i:]) - n * log_nz_eigs[i])
                        alphas[i] = alpha
                        if alpha > 1:
                            Ds[i] = torch.max(torch.abs(
                                1 - (nz_eigs[i:] / xmin) ** (-alpha + 1) - seq / n     
                            ))

                    min_D_index = torch.argmin(Ds)
                    final_alpha = alphas[min_D_index]
                    final_D = Ds[min_D_index]
                
                final_alpha = final_alpha.item()
                final_D = final_D.item()
                final_alphahat=final_alpha*math.log10(spectral_norm)

                results['spectral_norm'].append(spectral_norm)
                results['alphahat'].append(final_alphahat)
                results['norm'].append(fnorm)
                results['alpha'].append(final_alpha)
                results['D'].append(final_D)
                results['longname'].append(name)
                results['eigs'].append(eigs.detach().cpu().numpy())
                results['eigs_num'].append(len(eigs))
        
        return results
    
    
    def get_layer_temps(self, assign_func, metric_scores, untuned_lr):
        n = len(metric_scores)
        idx = [i for i in range(n)]
        temps = np.array([untuned_lr] * n)
        
        if assign_func == 'tb_linear_map':
            lr_range = [self.lr_min_ratio * untuned_lr,  self.lr_max_ratio * untuned_lr]
            score_range = [min(metric_scores),  max(metric_scores)]
            temps = np.interp(metric_scores, score_range, lr_range)

        elif assign_func == 'tb_sqrt':
            temps = np.sqrt(metric_scores)/np.sum(np.sqrt(metric_scores)) * n * untuned_lr

        elif assign_func == 'tb_log2':
            temps = np.log2(metric_scores)/np.sum(np.log2(metric_scores)) * n * untuned_lr

        elif assign_func == 'tb_step':
            idxes = np.argsort(metric_scores)
            unsort_temps = [untuned_lr * (self.lr_min_ratio + (self.lr_max_ratio - self.lr_min_ratio) * i / n) for i in range(n)]
            temps = [value for _, value in sorted(list(zip(idxes, unsort_temps)), key=itemgetter(0))]
        
        else:
            raise NotImplementedError
        
        return temps
    
    




# --- ZihangHLiu/ModelBalancing esd_utils.py get_layer_temps, branch 'tb_layer_blocks' with
# schedule_func 'sigmoid' and tb_unit 'block' (the published configuration), verbatim apart
# from the other branches and prints.
def mb_get_layer_temps(args, temp_balance, n_alphas, epoch_val, metrics=None, hyperparam='lr'):
    n = len(n_alphas)
    assert temp_balance == 'tb_layer_blocks'
    layer_names = metrics['longname']
    block_dict = {}
    idx_list = []

    # parse and group layer names
    for idx, layer in enumerate(layer_names):
        # parse layer name to group different types of layers
        match = re.search(r'(.*?)\.(\d+)\.(.*)', layer)
        if match and (args.lora_esd == "False" or any(s in layer for s in args.lora_target_modules)):
            idx_list.append(idx)
            before = match.group(1)
            index = int(match.group(2))
            after = match.group(3)
            type_name = before + '.' + after

            if index in block_dict:
                block_dict[index].append(idx)
            else:
                block_dict[index] = []
                block_dict[index].append(idx)

    block_mean_metric = {}
    block_param = {}
    for block_num, block_idxs in block_dict.items():
        block_mean_metric[block_num] = np.mean([n_alphas[i] for i in block_idxs])
    block_metric_list = [alpha for _, alpha in block_mean_metric.items()]
    assert args.schedule_func == "sigmoid"
    alpha_mean = np.mean(block_metric_list)
    diffs = block_metric_list - alpha_mean
    def stage_sigmoid(x):
        if x > 0:
            return args.sigmoid_max * (1 / (1 + np.exp(-1 * args.exp_temp  * x)) - 0.5)
        else:
            return args.sigmoid_min * (1 / (1 + np.exp(-1 * args.exp_temp  * x)) - 0.5)

    factors = np.array([stage_sigmoid(x) for x in diffs])
    scaling = 10 ** factors
    block_new_val = epoch_val * scaling

    for i, idx in enumerate(block_mean_metric.keys()):
        block_param[idx] = block_new_val[i]

    assert args.tb_unit == "block"
    new_val = np.zeros(len(layer_names))
    for block_num, block_idxs in block_dict.items():
        for idx, val in enumerate(block_idxs):
            new_val[val] = block_param[block_num]
    for idx in range(len(layer_names)):
        if idx not in idx_list:
            new_val[idx] = epoch_val
    if args.tb_lr_normalize == 'True':
        new_val = [lr / np.mean(new_val) * epoch_val for lr in new_val]
    return new_val


# --- haiquanlu/AlphaPruning lib/esd_utils.py net_esd_estimator (CPU already in the original;
# prints removed).
def ap_net_esd_estimator(
            net=None,
            EVALS_THRESH=0.00001,
            bins=100,
            fix_fingers=None,
            xmin_pos=2,
            conv_norm=0.5, 
            filter_zeros=False):
    """_summary_

    Args:
        net (_type_, optional): model. Defaults to None.
        EVALS_THRESH (float, optional): eval threshold to filter near-zero. Defaults to 0.00001.
        bins (int, optional): _description_. Defaults to 100.
        fix_fingers (_type_, optional): [None, 'xmin_peak', 'xmin_mid']
        xmin_pos:   2 = middle of the spectrum selected as xmin,    larger than 2 means select smaller eigs as xmin

    Returns:
        _type_: _description_
    """
    results = {
        'alpha':[],
        'spectral_norm': [],
        'D': [],
        'longname':[],
        'eigs':[],
        'norm':[],
        'alphahat': []
        }
    # iterate through layers
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d) or isinstance(m, nn.Linear):
            matrix = m.weight.data.clone().cpu()
            # i have checked that the multiplication won't affect the weights value
            # normalization and tranpose Conv2d
            if isinstance(m, nn.Conv2d):
                matrix = torch.flatten(matrix, start_dim=2) * math.sqrt(conv_norm)
                matrix = matrix.transpose(1, 2).transpose(0, 1)
            matrix = matrix.to(torch.float32)
            eigs = torch.square(torch.linalg.svdvals(matrix).flatten())
            # ascending order 
            eigs, _ = torch.sort(eigs, descending=False)
            spectral_norm = eigs[-1].item()
            fnorm = torch.sum(eigs).item()
            
            if filter_zeros:
                nz_eigs = eigs[eigs > EVALS_THRESH]
                N = len(nz_eigs)
                # somethines N may equal 0, if that happens, we don't filter eigs
                if N == 0:
                    nz_eigs = eigs
                    N = len(nz_eigs)
            else:
                nz_eigs = eigs
                N = len(nz_eigs)
            log_nz_eigs  = torch.log(nz_eigs)

            if fix_fingers == 'xmin_mid':
                i = int(len(nz_eigs) / xmin_pos)    
                xmin = nz_eigs[i]
                n = float(N - i)
                seq = torch.arange(n)
                final_alpha = 1 + n / (torch.sum(log_nz_eigs[i:]) - n * log_nz_eigs[i])
                final_D = torch.max(torch.abs(
                            1 - (nz_eigs[i:] / xmin) ** (-final_alpha + 1) - seq / n     
                        ))
            else:
                alphas = torch.zeros(N-1)
                Ds     = torch.ones(N-1)
                if fix_fingers == 'xmin_peak':
                    hist_nz_eigs = torch.log10(nz_eigs)
                    min_e, max_e = hist_nz_eigs.min(), hist_nz_eigs.max()
                    counts = torch.histc(hist_nz_eigs, bins, min=min_e, max=max_e)
                    boundaries = torch.linspace(min_e, max_e, bins + 1)
                    h = counts, boundaries
                    ih = torch.argmax(h[0])  # 
                    xmin2 = 10 ** h[1][ih]
                    xmin_min = torch.log10(0.95 * xmin2)
                    xmin_max = 1.5 * xmin2
                
                for i, xmin in enumerate(nz_eigs[:-1]):
                    if fix_fingers == 'xmin_peak':
                        if xmin < xmin_min:
                            continue
                        if xmin > xmin_max:
                            break

                    n = float(N - i)
                    seq = torch.arange(n)
                    alpha = 1 + n / (torch.sum(log_nz_eigs[i:]) - n * log_nz_eigs[i])
                    alphas[i] = alpha
                    if alpha > 1:
                        Ds[i] = torch.max(torch.abs(
                            1 - (nz_eigs[i:] / xmin) ** (-alpha + 1) - seq / n     
                        ))

                min_D_index = torch.argmin(Ds)
                final_alpha = alphas[min_D_index]
                final_D = Ds[min_D_index]
            
            final_alpha = final_alpha.item()
            final_D = final_D.item()
            final_alphahat=final_alpha*math.log10(spectral_norm)

            results['spectral_norm'].append(spectral_norm)
            results['alphahat'].append(final_alphahat)
            results['norm'].append(fnorm)
            results['alpha'].append(final_alpha)
            results['D'].append(final_D)
            results['longname'].append(name)
            results['eigs'].append(eigs.detach().cpu().numpy())

    return results


# --- haiquanlu/AlphaPruning lib/prune.py ww_sparsity, from the metric load on (the model and
# file reading replaced by the arguments `metrics`, `prunables`, `layer_num_in_block`).
def ap_ww_sparsity_core(args, metrics, prunables, layer_num_in_block, s1=0.8, s2=1.2):
    if args.mapping_type == 'block_wise':
        block_metrics = [np.mean(metrics[i:i+layer_num_in_block]) for i in range(0, len(metrics), layer_num_in_block)]
        metrics = [i for i in block_metrics for j in range(layer_num_in_block)]

    scores = torch.tensor(metrics)
    prunables = torch.tensor(prunables)

    # linear mapping
    max = torch.max(scores)
    min = torch.min(scores)

    layerwise_pruning_ratios = (((scores - min) / (max - min)) * (s2 - s1) + s1)
    scaler = torch.sum(prunables) * args.sparsity_ratio / (torch.sum(prunables * layerwise_pruning_ratios))
    layerwise_pruning_ratios = layerwise_pruning_ratios * scaler
    layerwise_pruning_ratios = layerwise_pruning_ratios.cpu().numpy().tolist()
    return layerwise_pruning_ratios


# --- lib/prune.py prune_magnitude: the masking lines for one layer (.cuda() removed).
def ap_prune_magnitude_mask(W, ratio):
    W_metric = torch.abs(W)
    thresh = torch.sort(W_metric.flatten())[0][int(W.numel()*ratio)]
    W_mask = (W_metric<=thresh)
    return W_mask


# --- lib/prune.py prune_wanda: the unstructured masking lines for one layer.
def ap_prune_wanda_mask(W_metric, ratio):
    W_mask = (torch.zeros_like(W_metric) == 1)  ## initialize a mask to be all False
    sort_res = torch.sort(W_metric, dim=-1, stable=True)
    indices = sort_res[1][:,:int(W_metric.shape[1]*ratio)]
    W_mask.scatter_(1, indices, True)
    return W_mask


# --- HUST-AI-HYZ/FARMS Image_Classification/sampling.py (conv2D_Wmats with its logging
# removed, fixed_sampling, matrix_size_dependent_sampling, sampled_eigs' linear branch).
class CHANNELS():
    UNKNOWN = 'unknown'
    FIRST = 'first'
    LAST = 'last'


def farms_conv2D_Wmats(Wtensor, channels=CHANNELS.LAST):
        Wmats = []
        s = Wtensor.shape
        N, M, imax, jmax = s[0], s[1], s[2], s[3]

        if N + M >= imax + jmax:
            detected_channels= CHANNELS.LAST
        else:
            detected_channels= CHANNELS.FIRST

        if channels == CHANNELS.UNKNOWN :
            channels= detected_channels

        if detected_channels == channels:
            if channels == CHANNELS.LAST:
                for i in range(imax):
                    for j in range(jmax):
                        W = Wtensor[:, :, i, j]
                        if W.shape[0] < W.shape[1]:
                            N, M = M, N
                            W = W.T
                        Wmats.append(W)

            else: #channels == CHANNELS.FIRST  # i, j, M, N
                M, N, imax, jmax = imax, jmax, N, M
                for i in range(imax):
                    for j in range(jmax):
                        W = Wtensor[i, j, :, :]
                        if W.shape[1] < W.shape[0]:
                            N, M = M, N
                            W = W.T
                        Wmats.append(W)
        rf = imax * jmax  # receptive field size
        return Wmats, N, M, rf


def farms_matrix_size_dependent_sampling(matrix, isconv2d, conv_norm, num_row_samples, Q_ratio, step_size=10):
    rows, cols = matrix.shape
    num_col_samples = int(num_row_samples * Q_ratio)

    # Calculate number of windows
    num_row_windows = max(1, (rows - num_row_samples) // step_size + 1)
    num_col_windows = max(1, (cols - num_col_samples) // step_size + 1)

    all_eigs = []
    for i in range(0, num_row_windows):
        for j in range(0, num_col_windows):
            # Extract submatrix
            row_start = i * step_size
            col_start = j * step_size
            submatrix = matrix[row_start:row_start + num_row_samples,
                               col_start:col_start + num_col_samples]
            if isconv2d:
                submatrix *= math.sqrt(conv_norm)
            eigs = torch.square(torch.linalg.svdvals(submatrix))
            all_eigs.append(eigs)

    all_eigs = torch.cat(all_eigs)
    all_eigs, _ = torch.sort(all_eigs, descending=False)

    return all_eigs


def farms_fixed_sampling(matrix, isconv2d, conv_norm, num_row_samples, Q_ratio, sampling_ops_per_dim):
    rows, cols = matrix.shape
    num_col_samples = int(num_row_samples * Q_ratio)

    # Calculate step sizes
    row_step = max(1, (rows - num_row_samples) // (sampling_ops_per_dim - 1))
    col_step = max(1, (cols - num_col_samples) // (sampling_ops_per_dim - 1))

    # Calculate number of windows
    num_row_windows = min(sampling_ops_per_dim, max(1, (rows - num_row_samples) // row_step + 1))
    num_col_windows = min(sampling_ops_per_dim, max(1, (cols - num_col_samples) // col_step + 1))

    all_eigs = []
    for i in range(0, num_row_windows):
        for j in range(0, num_col_windows):
            # Extract submatrix
            row_start = min(i * row_step, rows - num_row_samples)
            col_start = min(j * col_step, cols - num_col_samples)
            submatrix = matrix[row_start:row_start+num_row_samples,
                               col_start:col_start+num_col_samples]
            if isconv2d:
                submatrix *= math.sqrt(conv_norm)
            eigs = torch.square(torch.linalg.svdvals(submatrix))
            all_eigs.append(eigs)

    all_eigs = torch.cat(all_eigs)
    all_eigs, _ = torch.sort(all_eigs, descending=False)

    return all_eigs


# --- tempbalance_farms.py Tempbalance_FARMS.net_esd_estimator(use_sliding_window=True), the
# per-layer body for Conv2d and Linear, returning the layer's alpha; analysis_esd reduced to
# the 'median' fit it performs (the whole function's alpha expression, verbatim).
def farms_analysis_alpha(eigs, xmin_pos=2):
    eigs = torch.sort(eigs).values
    nz_eigs = eigs
    N = len(nz_eigs)
    log_nz_eigs = torch.log(nz_eigs)
    i = int(len(nz_eigs) / xmin_pos)
    xmin = nz_eigs[i]
    n = float(N - i)
    final_alpha = 1 + n / (torch.sum(log_nz_eigs[i:]) - n * log_nz_eigs[i])
    return final_alpha.item()


def farms_layer_alpha(m, conv_norm=0.5, num_row_samples=100, Q_ratio=1.0, step_size=9,
                      sampling_ops_per_dim=9):
    if isinstance(m, nn.Conv2d):
        matrix = m.weight.data.clone()
        matrix = matrix.float()
        Wmats, N, M, rf = farms_conv2D_Wmats(matrix, channels=CHANNELS.UNKNOWN)
        rows, cols = Wmats[0].shape
        if Q_ratio > 1:
            num_row_samples_cnn = cols // Q_ratio
            num_col_samples_cnn = cols
        else:
            num_row_samples_cnn = cols
            num_col_samples_cnn = cols // (1 / Q_ratio)
        num_row_samples_cnn = max(1, int(num_row_samples_cnn))
        num_col_samples_cnn = max(1, int(num_col_samples_cnn))

        division = int(rows // cols)
        alphas = []
        for i in range(division):
            division_eigs = []
            for W in Wmats:
                submatrix = W[i*num_row_samples_cnn:(i+1)*num_row_samples_cnn, :num_col_samples_cnn]
                submatrix *= math.sqrt(conv_norm)
                division_eigs.append(torch.square(torch.linalg.svdvals(submatrix)))

            division_eigs = torch.cat(division_eigs)
            division_eigs = torch.sort(division_eigs, descending=False).values
            alphas.append(farms_analysis_alpha(division_eigs))
        return np.mean(alphas)
    matrix = m.weight.data.clone()
    matrix = matrix.float()
    if sampling_ops_per_dim is None:
        eigs = farms_matrix_size_dependent_sampling(matrix, False, conv_norm, num_row_samples,
                                                    Q_ratio, step_size)
    else:
        eigs = farms_fixed_sampling(matrix, False, conv_norm, num_row_samples, Q_ratio,
                                    sampling_ops_per_dim)
    return farms_analysis_alpha(eigs)


# --- haiquanlu/AlphaPruning lib/layerwrapper.py WrappedGPT (verbatim).
class WrappedGPT:
    """
    This class wraps a GPT layer for specific operations.
    """

    def __init__(self, layer, layer_id=0, layer_name="none"):
        self.layer = layer
        self.dev = self.layer.weight.device
        self.rows = layer.weight.data.shape[0]
        self.columns = layer.weight.data.shape[1]

        self.scaler_row = torch.zeros((self.columns), device=self.dev)
        self.nsamples = 0

        self.layer_id = layer_id
        self.layer_name = layer_name

    def add_batch(self, inp, out):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if isinstance(self.layer, nn.Linear):
            if len(inp.shape) == 3:
                inp = inp.reshape((-1, inp.shape[-1]))
            inp = inp.t()

        self.scaler_row *= self.nsamples / (self.nsamples+tmp)
        self.nsamples += tmp

        inp = inp.type(torch.float32)
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2  / self.nsamples
